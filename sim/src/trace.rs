//! The event trace of a run: a digest of every event (two runs of one seed
//! must agree on it) and the most recent events, printed on failure.

use std::collections::VecDeque;

const KEEP: usize = 200_000;

#[derive(Debug)]
pub struct Trace {
    digest: u64,
    events: u64,
    recent: VecDeque<String>,
}

impl Default for Trace {
    fn default() -> Trace {
        Trace { digest: 0xcbf2_9ce4_8422_2325, events: 0, recent: VecDeque::new() }
    }
}

impl Trace {
    pub fn event(&mut self, text: String) {
        for byte in text.bytes().chain([b'\n']) {
            self.digest = (self.digest ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.events += 1;
        if self.recent.len() == KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(text);
    }

    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn tail(&self) -> Vec<String> {
        self.recent.iter().cloned().collect()
    }
}
