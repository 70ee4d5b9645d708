//! `cargo test -p sim` runs the default batch of seeds and the regression
//! seeds; `cargo test -p sim -- --seed N` runs exactly one and prints its
//! digest; `-- --seeds N` runs seeds 0..N. `CASHE_MODEL_BUG=<name>` plants a
//! core bug (the run must then fail).

use cashe::raft::PlantedBug;
use sim::{run, Options};

/// Every seed that ever failed, replayed by every run.
const REGRESSION_SEEDS: &[u64] = &[];
const DEFAULT_SEEDS: u64 = 500;

fn flag(args: &[String], name: &str) -> Option<u64> {
    let position = args.iter().position(|a| a == name)?;
    let value = args.get(position + 1).unwrap_or_else(|| panic!("{name} needs a number"));
    Some(value.parse().unwrap_or_else(|_| panic!("{name}: not a number: {value}")))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bug: PlantedBug = std::env::var("CASHE_MODEL_BUG")
        .map(|b| b.parse().unwrap_or_else(|e| panic!("CASHE_MODEL_BUG: {e}")))
        .unwrap_or_default();
    let options = Options { bug, ..Options::default() };
    let seeds: Vec<u64> = match (flag(&args, "--seed"), flag(&args, "--seeds")) {
        (Some(seed), _) => vec![seed],
        (None, count) => {
            (0..count.unwrap_or(DEFAULT_SEEDS)).chain(REGRESSION_SEEDS.iter().copied()).collect()
        }
    };
    let (mut passed, mut failed) = (0, 0);
    let started = std::time::Instant::now();
    for seed in &seeds {
        match run(*seed, &options) {
            Ok(report) => {
                passed += 1;
                if seeds.len() == 1 {
                    println!(
                        "seed {seed}: ok, digest {:016x}, {} steps, {} entries applied, {} crashes",
                        report.digest, report.steps, report.commits, report.crashes
                    );
                }
            }
            Err(failure) => {
                failed += 1;
                println!("seed {seed} FAILED at step {}: {}", failure.step, failure.what);
                if seeds.len() == 1 {
                    for line in &failure.trace {
                        println!("  {line}");
                    }
                }
                println!("  replay: CASHE_MODEL_BUG={bug} cargo test -p sim -- --seed {seed}");
            }
        }
    }
    if seeds.len() > 1 && bug == PlantedBug::None {
        let seed = seeds[0];
        let (a, b) = (run(seed, &options), run(seed, &options));
        let same = matches!((&a, &b), (Ok(x), Ok(y)) if x == y);
        if same {
            passed += 1;
            println!(
                "replay determinism: seed {seed} twice gives digest {:016x}",
                a.map(|r| r.digest).unwrap_or(0)
            );
        } else {
            failed += 1;
            println!("replay determinism FAILED: seed {seed} gave {a:?} and {b:?}");
        }
    }
    println!("sim: {} seeds in {:.1}s, bug={bug}", seeds.len(), started.elapsed().as_secs_f64());
    println!("sim: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
