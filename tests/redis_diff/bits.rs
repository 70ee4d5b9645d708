//! Bitmap and LCS commands for the differential test: SETBIT, GETBIT,
//! BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO and LCS on the shared key
//! space (strings of every kind, hashes and the other types: WRONGTYPE),
//! with random offsets and ranges (negative ones, BYTE and BIT units, ends
//! given or not), random BITFIELD subcommands over every type width,
//! `#` offsets and OVERFLOW mode, and malformed arguments for each error.
//! Every reply is deterministic in Redis, so every one is compared byte
//! for byte (`Check::Exact`).
//!
//! Not sent: offsets whose strings would take hundreds of MB on both sides
//! (an offset past the 512 MiB limit is sent: both refuse it); BITFIELD
//! writes whose field runs past the 512 MiB limit (cashe refuses them,
//! Redis grows the string 8 bytes past it: see `src/kv/bits.rs`).

use super::{words, Case, Check, Generator, Runner};

/// Offsets kept small, so strings stay short and ranges cross them.
fn bit_offset(generator: &mut Generator) -> Vec<u8> {
    match generator.below(20) {
        0 => generator
            .pick(&[b"-1", b"4294967296", b"abc", b"", b"1.5", b" 3", b"9223372036854775807"])
            .to_vec(),
        1 => generator.below(2000).to_string().into_bytes(),
        _ => generator.below(120).to_string().into_bytes(),
    }
}

/// A BITCOUNT/BITPOS index: mostly small, either sign, sometimes extreme.
fn index(generator: &mut Generator) -> Vec<u8> {
    match generator.below(12) {
        0 => generator
            .pick(&[b"9223372036854775807", b"-9223372036854775808", b"abc", b"", b"1.0", b"-0"])
            .to_vec(),
        1..=5 => (generator.below(40) as i64 - 20).to_string().into_bytes(),
        _ => (generator.below(200) as i64 - 100).to_string().into_bytes(),
    }
}

fn unit(generator: &mut Generator) -> Vec<u8> {
    generator.pick(&[b"BIT", b"BYTE", b"bit", b"byte", b"bits", b""]).to_vec()
}

fn field_type(generator: &mut Generator) -> Vec<u8> {
    if generator.chance(5) {
        return generator
            .pick(&[b"u64", b"i65", b"i0", b"u", b"x8", b"", b"i08", b"I8", b"u-1", b"i8\0x"])
            .to_vec();
    }
    let sign = if generator.chance(50) { "i" } else { "u" };
    let bits = match generator.below(4) {
        0 => generator.pick(&[b"1", b"8", b"16", b"32", b"63"]).to_vec(),
        1 if sign == "i" => b"64".to_vec(),
        _ => generator.rng.range(1, 64).to_string().into_bytes(),
    };
    [sign.as_bytes(), &bits].concat()
}

fn field_offset(generator: &mut Generator) -> Vec<u8> {
    match generator.below(12) {
        0 => generator.pick(&[b"-1", b"#-1", b"#", b"abc", b"#4294967296", b"#9223372036854775807"]).to_vec(),
        1..=3 => format!("#{}", generator.below(12)).into_bytes(),
        _ => generator.below(100).to_string().into_bytes(),
    }
}

/// A BITFIELD value or increment: small, near the type limits, or extreme.
fn field_value(generator: &mut Generator) -> Vec<u8> {
    match generator.below(10) {
        0 => generator
            .pick(&[
                b"9223372036854775807",
                b"-9223372036854775808",
                b"abc",
                b"",
                b"1.5",
                b"18446744073709551615",
            ])
            .to_vec(),
        1 | 2 => {
            let power = 1i128 << generator.below(64);
            let value = power + generator.below(5) as i128 - 2;
            let value = if generator.chance(50) { -value } else { value };
            value.clamp(i64::MIN as i128, i64::MAX as i128).to_string().into_bytes()
        }
        _ => (generator.below(600) as i64 - 300).to_string().into_bytes(),
    }
}

fn bitfield_args(generator: &mut Generator, key: Vec<u8>, read_only: bool) -> Vec<Vec<u8>> {
    let name: &[u8] = if read_only { b"BITFIELD_RO" } else { b"BITFIELD" };
    let mut args = vec![name.to_vec(), key];
    for _ in 0..generator.below(5) {
        match generator.below(if read_only { 12 } else { 10 }) {
            0..=2 => args.extend([b"GET".to_vec(), field_type(generator), field_offset(generator)]),
            3 | 4 => args.extend([b"SET".to_vec(), field_type(generator), field_offset(generator)]),
            5 | 6 => args.extend([b"INCRBY".to_vec(), field_type(generator), field_offset(generator)]),
            7 | 8 => args.push(b"OVERFLOW".to_vec()),
            _ => args.push(generator.pick(&[b"get", b"foo", b"overflow", b"Incrby"]).to_vec()),
        }
        if matches!(args[args.len() - 3].as_slice(), b"SET" | b"INCRBY") {
            args.push(field_value(generator));
        }
        if args.last().map(Vec::as_slice) == Some(b"OVERFLOW") {
            args.push(generator.pick(&[b"WRAP", b"SAT", b"FAIL", b"fail", b"sat", b"bogus"]).to_vec());
        }
    }
    args
}

/// One random bits command on `key`.
pub(super) fn case(generator: &mut Generator, key: Vec<u8>) -> Case {
    let exact = |args: Vec<Vec<u8>>| Case { args, check: Check::Exact };
    match generator.below(20) {
        0..=3 => {
            let value = match generator.below(10) {
                0 => generator.pick(&[b"2", b"-1", b"abc", b"", b"01"]).to_vec(),
                _ => generator.pick(&[b"0", b"1"]).to_vec(),
            };
            exact(vec![b"SETBIT".to_vec(), key, bit_offset(generator), value])
        }
        4 => exact(vec![b"GETBIT".to_vec(), key, bit_offset(generator)]),
        5 | 6 => {
            let mut args = vec![b"BITCOUNT".to_vec(), key];
            match generator.below(10) {
                0 => args.push(index(generator)),
                1..=3 => {}
                4..=6 => args.extend([index(generator), index(generator)]),
                _ => args.extend([index(generator), index(generator), unit(generator)]),
            }
            if generator.chance(3) {
                args.push(b"extra".to_vec());
            }
            exact(args)
        }
        7..=9 => {
            let bit = match generator.below(12) {
                0 => generator.pick(&[b"2", b"-1", b"abc", b""]).to_vec(),
                _ => generator.pick(&[b"0", b"1"]).to_vec(),
            };
            let mut args = vec![b"BITPOS".to_vec(), key, bit];
            match generator.below(4) {
                0 => {}
                1 => args.push(index(generator)),
                2 => args.extend([index(generator), index(generator)]),
                _ => args.extend([index(generator), index(generator), unit(generator)]),
            }
            if generator.chance(3) {
                args.push(b"extra".to_vec());
            }
            exact(args)
        }
        10 | 11 => {
            let op = match generator.below(12) {
                0 => generator.pick(&[b"nand", b"", b"andx", b"Not"]).to_vec(),
                _ => generator.pick(&[b"AND", b"OR", b"XOR", b"NOT", b"and", b"xor"]).to_vec(),
            };
            let mut args = vec![b"BITOP".to_vec(), op, key];
            let sources = if args[1].eq_ignore_ascii_case(b"not") && generator.chance(90) {
                1
            } else {
                generator.rng.range(1, 4)
            };
            args.extend((0..sources).map(|_| generator.key()));
            exact(args)
        }
        12..=14 => exact(bitfield_args(generator, key, false)),
        15 => exact(bitfield_args(generator, key, true)),
        16 | 17 => {
            let mut args = vec![b"LCS".to_vec(), key, generator.key()];
            for _ in 0..generator.below(4) {
                match generator.below(6) {
                    0 => args.push(b"LEN".to_vec()),
                    1 | 2 => args.push(b"IDX".to_vec()),
                    3 => args.push(generator.pick(&[b"WITHMATCHLEN", b"withmatchlen"]).to_vec()),
                    4 => {
                        args.push(b"MINMATCHLEN".to_vec());
                        args.push(generator.pick(&[b"0", b"1", b"2", b"3", b"-5", b"abc"]).to_vec());
                    }
                    _ => args.push(generator.pick(&[b"MINMATCHLEN", b"foo"]).to_vec()),
                }
            }
            exact(args)
        }
        _ => {
            // Short strings of few distinct bytes, so that LCS finds matches
            // and the bit commands meet set and clear bits alike.
            let value: Vec<u8> = (0..generator.below(24))
                .map(|_| *generator.pick(&[b"a", b"b", b"c", b"\xff", b"\x00"]).first().unwrap())
                .collect();
            exact(vec![b"SET".to_vec(), key, value])
        }
    }
}

/// Reads that show `key`'s whole value, run after each seed.
pub(super) fn final_state(key: &[u8]) -> Vec<Case> {
    vec![Case { args: words(&[b"BITCOUNT", key]), check: Check::Exact }]
}

/// Random bits commands in the last phase.
const RANDOM_CASES: usize = 4000;

/// Random bits commands on the shared keys, then a bitmap of a few hundred
/// KB: bits set far apart, counted and searched over ranges, combined with
/// BITOP, read with BITFIELD, then deleted.
pub(super) fn big(runner: &mut Runner, seed: u64) {
    let mut generator = Generator::new(seed);
    // First more random bits commands on the shared keys than the shared
    // phase sends (2 commands in 64 there).
    for step in 0..RANDOM_CASES {
        let key = generator.key();
        let case = case(&mut generator, key);
        runner.run(seed, step, &case);
    }
    let exact = |args: Vec<Vec<u8>>| Case { args, check: Check::Exact };
    let keys: [&[u8]; 3] = [b"bitmap:a", b"bitmap:b", b"bitmap:c"];
    const BITS_MAX: u64 = 3_000_000;
    for step in 0..600 {
        let key = keys[step % keys.len()];
        let offset = generator.below(BITS_MAX >> (step % 3)).to_string().into_bytes();
        let args = vec![b"SETBIT".to_vec(), key.to_vec(), offset, b"1".to_vec()];
        runner.run(seed, step, &exact(args));
    }
    // A long run of ones, so BITPOS 0 has to skip it.
    let ones = vec![0xffu8; 20_000];
    runner.run(seed, 0, &exact(vec![b"SET".to_vec(), b"bitmap:ones".to_vec(), ones]));
    let all = [keys[0], keys[1], keys[2], b"bitmap:ones"];
    for step in 0..300 {
        let key = all[step % all.len()].to_vec();
        let range = |generator: &mut Generator| {
            let value = generator.below(2 * BITS_MAX) as i64 - BITS_MAX as i64;
            value.to_string().into_bytes()
        };
        let mut args = match generator.below(3) {
            0 => vec![b"BITCOUNT".to_vec(), key],
            _ => vec![b"BITPOS".to_vec(), key, generator.pick(&[b"0", b"1"]).to_vec()],
        };
        match generator.below(4) {
            0 => {}
            1 => args.extend([range(&mut generator), range(&mut generator), b"BIT".to_vec()]),
            2 => {
                let (start, end) = (range(&mut generator), range(&mut generator));
                args.extend([start, end]);
                // BYTE ranges: the same numbers read as bytes, mostly past the end.
            }
            _ if args[0] == b"BITPOS" => {
                args.push((generator.below(400_000) as i64 - 200_000).to_string().into_bytes())
            }
            _ => args.extend([b"0".to_vec(), b"-1".to_vec(), b"BIT".to_vec()]),
        }
        runner.run(seed, step, &exact(args));
    }
    for op in [&b"AND"[..], b"OR", b"XOR"] {
        let mut args = words(&[b"BITOP", op, b"bitmap:result"]);
        args.extend(all.iter().map(|key| key.to_vec()));
        runner.run(seed, 0, &exact(args));
        runner.run(seed, 0, &exact(words(&[b"BITCOUNT", b"bitmap:result"])));
        runner.run(seed, 0, &exact(words(&[b"BITPOS", b"bitmap:result", b"1", b"100", b"-1", b"BIT"])));
    }
    runner.run(seed, 0, &exact(words(&[b"BITOP", b"NOT", b"bitmap:result", b"bitmap:a"])));
    runner.run(seed, 0, &exact(words(&[b"BITCOUNT", b"bitmap:result"])));
    runner.run(seed, 0, &exact(words(&[b"BITPOS", b"bitmap:result", b"0"])));
    for step in 0..200 {
        let key = all[step % all.len()].to_vec();
        let args = vec![
            b"BITFIELD".to_vec(),
            key,
            b"GET".to_vec(),
            b"u63".to_vec(),
            generator.below(BITS_MAX).to_string().into_bytes(),
            b"INCRBY".to_vec(),
            b"i64".to_vec(),
            generator.below(BITS_MAX).to_string().into_bytes(),
            field_value(&mut generator),
        ];
        runner.run(seed, step, &exact(args));
    }
    for key in all.iter().chain([&&b"bitmap:result"[..]]) {
        runner.run(seed, 0, &exact(words(&[b"GET", key])));
        runner.run(seed, 0, &exact(words(&[b"DEL", key])));
    }
}
