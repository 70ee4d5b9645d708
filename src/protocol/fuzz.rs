//! Fuzz target body for the request parser: takes arbitrary bytes and must
//! not panic. `fuzz/fuzz_targets/resp_parse.rs` calls it, and
//! `tests/protocol.rs` runs it over seeded random and mutated inputs so CI
//! covers it without a fuzzer.
//!
//! Beyond not panicking it checks the parser's contract (see `parser`'s
//! module docs): each result consumes no more than it was given, every
//! command makes progress, commands respect the limits, a parser that asked
//! for more bytes asks again on the same bytes, the unconsumed rest stays
//! bounded, and the same bytes fed in pieces give the same results as fed
//! whole.

use super::parser::{Limits, Parsed, Parser, ProtocolError, Rejection};

/// Small limits, so that random inputs reach them.
const FUZZ_LIMITS: Limits =
    Limits { value_bytes_max: 4096, key_bytes_max: 256, arguments_max: 64, inline_bytes_max: 1024 };

/// Inputs up to this size are also fed one byte at a time.
const BYTEWISE_BYTES_MAX: usize = 256;

/// What a run of the parser produced, without the `consumed` counts, which
/// depend on how the bytes were split.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Command(Vec<Vec<u8>>),
    Rejected(Rejection),
    Failed(ProtocolError),
}

/// Parses the input whole and split; returns the number of commands.
pub fn resp_parse(data: &[u8]) -> usize {
    let whole = parse_in_pieces(data, &[]);
    let split_at = match (data.first(), data.last()) {
        (Some(first), Some(last)) => (usize::from(*first) * 256 + usize::from(*last)) % (data.len() + 1),
        _ => 0,
    };
    assert_eq!(whole, parse_in_pieces(data, &[split_at]), "split at {split_at}");
    if data.len() <= BYTEWISE_BYTES_MAX {
        let cuts: Vec<usize> = (0..data.len()).collect();
        assert_eq!(whole, parse_in_pieces(data, &cuts), "fed one byte at a time");
    }
    whole.0.iter().filter(|event| matches!(event, Event::Command(_))).count()
}

/// Shows the parser `data[..cut]` for each cut in turn, then all of `data`,
/// as a connection would see bytes arrive. Returns the events, and the bytes
/// consumed when the parser ended up waiting (`None` if it failed).
fn parse_in_pieces(data: &[u8], cuts: &[usize]) -> (Vec<Event>, Option<usize>) {
    let mut parser = Parser::new(FUZZ_LIMITS);
    let mut events = Vec::new();
    let mut offset = 0;
    for end in cuts.iter().copied().chain([data.len()]) {
        assert!(end <= data.len());
        let visible = &data[..end.max(offset)];
        loop {
            let available = visible.len() - offset;
            let parsed = parser.parse(&visible[offset..]);
            assert!(parsed.consumed() <= available, "{parsed:?} from {available} bytes");
            offset += parsed.consumed();
            match parsed {
                Parsed::Command { arguments, consumed } => {
                    assert!(consumed > 0);
                    check_arguments(&arguments);
                    events.push(Event::Command(arguments));
                }
                Parsed::Rejected { rejection, consumed } => {
                    assert!(consumed > 0);
                    events.push(Event::Rejected(rejection));
                }
                Parsed::Incomplete { .. } => {
                    check_waiting(&mut parser, &visible[offset..]);
                    break;
                }
                Parsed::Failed { error } => {
                    assert_eq!(parser.parse(&data[offset..]), Parsed::Failed { error: error.clone() });
                    events.push(Event::Failed(error));
                    return (events, None);
                }
            }
        }
    }
    (events, Some(offset))
}

fn check_arguments(arguments: &[Vec<u8>]) {
    assert!(!arguments.is_empty() && arguments.len() <= FUZZ_LIMITS.arguments_max);
    assert!(arguments.iter().all(|argument| argument.len() <= FUZZ_LIMITS.value_bytes_max));
}

/// A parser that asked for more bytes consumes nothing more of the same
/// bytes, and leaves the caller a bounded rest.
fn check_waiting(parser: &mut Parser, rest: &[u8]) {
    assert_eq!(parser.parse(rest), Parsed::Incomplete { consumed: 0 });
    let rest_bytes_max = FUZZ_LIMITS.inline_bytes_max.max(FUZZ_LIMITS.value_bytes_max) + 1;
    assert!(rest.len() <= rest_bytes_max, "{} bytes left waiting", rest.len());
    let held_bytes_max = FUZZ_LIMITS.arguments_max * FUZZ_LIMITS.value_bytes_max;
    assert!(parser.held_bytes() <= held_bytes_max);
}
