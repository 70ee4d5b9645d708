//! What both model checkers share: settings from the environment and the
//! report of each property after an exhaustive and a random-walk phase.

use cashe::raft::PlantedBug;
use stateright::{Checker, Expectation, Model};
use std::fmt::Debug;

pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The bug selected by `CASHE_MODEL_BUG`, if any.
pub fn planted_bug() -> PlantedBug {
    match std::env::var("CASHE_MODEL_BUG") {
        Ok(name) => name.parse().unwrap_or_else(|e| panic!("CASHE_MODEL_BUG: {e}")),
        Err(_) => PlantedBug::None,
    }
}

/// Prints every property's outcome over both checkers (a counterexample
/// with its actions for a violation). Returns whether all went as expected:
/// `always` properties hold, `sometimes` properties happen.
pub fn report<M>(exhaustive: &impl Checker<M>, walks: &impl Checker<M>) -> bool
where
    M: Model,
    M::State: Clone + PartialEq,
    M::Action: Clone + PartialEq + Debug,
{
    let mut ok = true;
    for property in walks.model().properties() {
        let found = exhaustive.discovery(property.name).or_else(|| walks.discovery(property.name));
        match (property.expectation, found) {
            (Expectation::Sometimes, Some(_)) => println!("  property '{}': happens", property.name),
            (Expectation::Sometimes, None) => {
                println!("  property '{}': never happened (progress not shown)", property.name);
                ok = false;
            }
            (_, None) => println!("  property '{}': holds", property.name),
            (_, Some(path)) => {
                println!("  property '{}' VIOLATED; counterexample:", property.name);
                for (k, action) in path.into_actions().iter().enumerate() {
                    println!("    {k:>2}. {action:?}");
                }
                ok = false;
            }
        }
    }
    ok
}
