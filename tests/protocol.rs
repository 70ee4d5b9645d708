//! The request parser as a specification: RESP2 multibulk and inline
//! commands as Redis 7.0 reads them, pipelining and partial frames, each
//! protocol error with its Redis text, the limits, and the fuzz body over
//! seeded random and mutated inputs.

use cashe::protocol::{fuzz, Limits, Parsed, Parser, ProtocolError, Rejection, Reply, Request, Requests};
use cashe::raft::SplitMix64;

/// What a connection does with one input: every result until the parser
/// waits for more bytes or fails.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Command(Vec<String>),
    Rejected(Rejection),
    Failed(ProtocolError),
    /// The parser wants more bytes; this many are left unconsumed.
    Waiting(usize),
}

fn command(words: &[&str]) -> Outcome {
    Outcome::Command(words.iter().map(|word| word.to_string()).collect())
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("test arguments are UTF-8")
}

/// Feeds `pieces` one after another to one parser, as successive reads of a
/// connection, dropping consumed bytes as the contract says.
fn run_pieces(limits: Limits, pieces: &[&[u8]]) -> Vec<Outcome> {
    let mut parser = Parser::new(limits);
    let mut buffer = Vec::new();
    let mut outcomes = Vec::new();
    for piece in pieces {
        buffer.extend_from_slice(piece);
        loop {
            let parsed = parser.parse(&buffer);
            buffer.drain(..parsed.consumed());
            match parsed {
                Parsed::Command { arguments, .. } => {
                    outcomes.push(Outcome::Command(arguments.into_iter().map(text).collect()))
                }
                Parsed::Rejected { rejection, .. } => outcomes.push(Outcome::Rejected(rejection)),
                Parsed::Failed { error } => {
                    outcomes.push(Outcome::Failed(error));
                    return outcomes;
                }
                Parsed::Incomplete { .. } => break,
            }
        }
    }
    outcomes.push(Outcome::Waiting(buffer.len()));
    outcomes
}

fn run(input: &[u8]) -> Vec<Outcome> {
    run_pieces(Limits::default(), &[input])
}

fn run_with(limits: Limits, input: &[u8]) -> Vec<Outcome> {
    run_pieces(limits, &[input])
}

fn failure(input: &[u8]) -> ProtocolError {
    match run(input).pop() {
        Some(Outcome::Failed(error)) => error,
        other => panic!("{:?} did not fail: {other:?}", String::from_utf8_lossy(input)),
    }
}

#[test]
fn limits_default_to_the_documented_values() {
    let limits = Limits::default();
    assert_eq!(limits.value_bytes_max, 32 * 1024 * 1024);
    assert_eq!(limits.key_bytes_max, 64 * 1024);
    assert_eq!(limits.arguments_max, 1024 * 1024);
    assert_eq!(limits.inline_bytes_max, 64 * 1024);
    let custom = Limits { key_bytes_max: 10, ..Limits::default() };
    assert_eq!(
        Parser::new(custom).limits().key_bytes_max,
        10,
        "the key limit is carried for the command layer"
    );
}

#[test]
fn multibulk_command_is_read_whole_and_consumes_exactly_its_bytes() {
    let frame = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
    let mut parser = Parser::new(Limits::default());
    let parsed = parser.parse(frame);
    assert_eq!(
        parsed,
        Parsed::Command {
            arguments: vec![b"SET".to_vec(), b"k".to_vec(), b"value".to_vec()],
            consumed: frame.len()
        }
    );
    assert_eq!(parser.parse(b""), Parsed::Incomplete { consumed: 0 });
}

#[test]
fn multibulk_arguments_are_binary_safe() {
    let frame = b"*2\r\n$4\r\nECHO\r\n$6\r\na\r\n\0\xffb\r\n";
    let mut parser = Parser::new(Limits::default());
    match parser.parse(frame) {
        Parsed::Command { arguments, consumed } => {
            assert_eq!(arguments, vec![b"ECHO".to_vec(), b"a\r\n\0\xffb".to_vec()]);
            assert_eq!(consumed, frame.len());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(run(b"*1\r\n$0\r\n\r\n"), [command(&[""]), Outcome::Waiting(0)], "empty argument");
}

#[test]
fn empty_and_null_multibulks_are_skipped() {
    assert_eq!(run(b"*0\r\n*-1\r\n*-7\r\n*1\r\n$4\r\nPING\r\n"), [command(&["PING"]), Outcome::Waiting(0)]);
    let mut parser = Parser::new(Limits::default());
    assert_eq!(parser.parse(b"*0\r\n"), Parsed::Incomplete { consumed: 4 }, "skipped bytes are consumed");
}

#[test]
fn inline_command_splits_on_spaces_and_tabs() {
    assert_eq!(run(b"SET  k \t v\r\n"), [command(&["SET", "k", "v"]), Outcome::Waiting(0)]);
}

#[test]
fn inline_line_may_end_in_a_bare_newline() {
    assert_eq!(run(b"PING\nGET k\n"), [command(&["PING"]), command(&["GET", "k"]), Outcome::Waiting(0)]);
}

#[test]
fn empty_inline_lines_are_skipped() {
    assert_eq!(run(b"\r\n\n   \r\n\t\nPING\r\n"), [command(&["PING"]), Outcome::Waiting(0)]);
}

#[test]
fn inline_double_quotes_take_escapes() {
    let line = b"SET \"a b\" \"\\n\\r\\t\\b\\a\\\\\\\"\\x41\\x7a\\xZZ\\q\"\r\n";
    let expected = "\n\r\t\x08\x07\\\"AzxZZq";
    assert_eq!(run(line), [command(&["SET", "a b", expected]), Outcome::Waiting(0)]);
}

#[test]
fn inline_single_quotes_escape_only_the_quote() {
    let line = b"SET 'it\\'s' '\\n \"x\"'\r\n";
    assert_eq!(run(line), [command(&["SET", "it's", "\\n \"x\""]), Outcome::Waiting(0)]);
}

#[test]
fn inline_quotes_may_start_mid_word_and_be_empty() {
    assert_eq!(run(b"a\"b c\" \"\" ''\r\n"), [command(&["ab c", "", ""]), Outcome::Waiting(0)]);
}

#[test]
fn inline_closing_quote_must_be_followed_by_a_space() {
    assert_eq!(failure(b"SET \"a\"b\r\n"), ProtocolError::UnbalancedQuotes);
    assert_eq!(failure(b"SET 'a'b\r\n"), ProtocolError::UnbalancedQuotes);
    assert_eq!(run(b"SET \"a\"\tb\r\n"), [command(&["SET", "a", "b"]), Outcome::Waiting(0)]);
}

#[test]
fn inline_unterminated_quote_is_a_protocol_error() {
    assert_eq!(failure(b"SET \"abc\r\n"), ProtocolError::UnbalancedQuotes);
    assert_eq!(failure(b"SET 'abc\n"), ProtocolError::UnbalancedQuotes);
    assert_eq!(failure(b"SET \"abc\\\"\r\n"), ProtocolError::UnbalancedQuotes, "escaped closing quote");
}

#[test]
fn pipelined_commands_come_out_in_order() {
    let pipeline = b"*1\r\n$4\r\nPING\r\nGET a\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\nECHO 'c d'\n";
    assert_eq!(
        run(pipeline),
        [
            command(&["PING"]),
            command(&["GET", "a"]),
            command(&["GET", "b"]),
            command(&["ECHO", "c d"]),
            Outcome::Waiting(0)
        ]
    );
}

const PIPELINE: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nv\r\n\r\n56789\r\n\
    \r\nSET \"q u\" 'o\\'t' \\x41\n*0\r\n*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n";

#[test]
fn partial_frames_at_every_split_point_give_the_same_commands() {
    let whole = run(PIPELINE);
    assert_eq!(whole.len(), 5, "{whole:?}");
    assert_eq!(whole.last(), Some(&Outcome::Waiting(0)));
    for split in 0..=PIPELINE.len() {
        let (first, second) = PIPELINE.split_at(split);
        assert_eq!(run_pieces(Limits::default(), &[first, second]), whole, "split at {split}");
    }
    let bytes: Vec<&[u8]> = PIPELINE.chunks(1).collect();
    assert_eq!(run_pieces(Limits::default(), &bytes), whole, "one byte at a time");
}

#[test]
fn partial_frame_waits_without_consuming_partial_arguments() {
    let mut parser = Parser::new(Limits::default());
    // The count and the first argument move into the parser; the second
    // argument's data waits in the caller's buffer until it is whole.
    assert_eq!(parser.parse(b"*2\r\n$3\r\nGET\r\n$5\r\nab"), Parsed::Incomplete { consumed: 17 });
    assert_eq!(parser.held_bytes(), 3);
    assert_eq!(parser.parse(b"ab"), Parsed::Incomplete { consumed: 0 });
    assert_eq!(
        parser.parse(b"abcde\r\nPING\r\n"),
        Parsed::Command { arguments: vec![b"GET".to_vec(), b"abcde".to_vec()], consumed: 7 }
    );
    assert_eq!(parser.held_bytes(), 0);
}

#[test]
fn protocol_errors_have_redis_texts() {
    let cases: &[(&[u8], &str)] = &[
        (b"*x\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*2147483648\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*01\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*1\r\n$abc\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*1\r\n$33554433\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*1\r\nPING\r\n", "ERR Protocol error: expected '$', got 'P'"),
        (b"GET \"k\r\n", "ERR Protocol error: unbalanced quotes in request"),
        (b"*1\r\n$3\r\nGETxx", "ERR Protocol error: expected CRLF after bulk argument"),
    ];
    for (input, expected) in cases {
        let error = failure(input);
        assert_eq!(error.reply(), Reply::error(*expected), "{:?}", String::from_utf8_lossy(input));
    }
    let encoded = ProtocolError::InvalidMultibulkLength.reply().to_bytes();
    assert_eq!(encoded, b"-ERR Protocol error: invalid multibulk length\r\n");
}

#[test]
fn too_long_count_lines_are_protocol_errors() {
    let limits = Limits { inline_bytes_max: 16, ..Limits::default() };
    let long_count = [b"*".as_slice(), &[b'1'; 16]].concat();
    assert_eq!(run_with(limits, &long_count), [Outcome::Failed(ProtocolError::TooBigMultibulkCount)]);
    assert_eq!(run_with(limits, &long_count[..16]), [Outcome::Waiting(16)], "not yet over the limit");
    let long_length = [b"*1\r\n$".as_slice(), &[b'1'; 16]].concat();
    assert_eq!(run_with(limits, &long_length), [Outcome::Failed(ProtocolError::TooBigBulkCount)]);
    assert_eq!(ProtocolError::TooBigMultibulkCount.to_string(), "Protocol error: too big mbulk count string");
    assert_eq!(ProtocolError::TooBigBulkCount.to_string(), "Protocol error: too big bulk count string");
}

#[test]
fn too_long_inline_line_is_a_protocol_error() {
    let limits = Limits { inline_bytes_max: 8, ..Limits::default() };
    assert_eq!(run_with(limits, b"GET 1234\r\n"), [command(&["GET", "1234"]), Outcome::Waiting(0)]);
    assert_eq!(run_with(limits, b"GET 12345\r\n"), [Outcome::Failed(ProtocolError::TooBigInlineRequest)]);
    assert_eq!(run_with(limits, b"GET 12345"), [Outcome::Failed(ProtocolError::TooBigInlineRequest)]);
    assert_eq!(
        run_with(limits, b"GET 1234\r"),
        [Outcome::Waiting(9)],
        "a trailing CR may start the line end"
    );
    assert_eq!(
        ProtocolError::TooBigInlineRequest.reply(),
        Reply::error("ERR Protocol error: too big inline request")
    );
}

#[test]
fn over_limit_bulk_length_fails_without_allocating() {
    // 2^40 bytes: allocating it would abort the test process.
    let claim = b"*1\r\n$1099511627776\r\n";
    assert_eq!(run(claim), [Outcome::Failed(ProtocolError::InvalidBulkLength)]);
    // Even when the limits allow it, a claim is only a claim: the parser
    // waits for the bytes instead of reserving room for them.
    let unlimited = Limits { value_bytes_max: usize::MAX, ..Limits::default() };
    let mut parser = Parser::new(unlimited);
    assert_eq!(parser.parse(claim), Parsed::Incomplete { consumed: claim.len() });
    assert_eq!(parser.parse(b"some bytes"), Parsed::Incomplete { consumed: 0 });
    let huge_count = b"*2147483647\r\n$4\r\nPING\r\n";
    let mut parser = Parser::new(Limits { arguments_max: usize::MAX, ..Limits::default() });
    assert_eq!(parser.parse(huge_count), Parsed::Incomplete { consumed: huge_count.len() });
}

#[test]
fn too_many_arguments_are_skipped_and_the_connection_stays_usable() {
    let limits = Limits { arguments_max: 2, ..Limits::default() };
    let input = b"*3\r\n$1\r\na\r\n$3\r\nbcd\r\n$0\r\n\r\n*1\r\n$4\r\nPING\r\n";
    let rejection = Rejection::TooManyArguments { limit: 2 };
    let expected = [Outcome::Rejected(rejection.clone()), command(&["PING"]), Outcome::Waiting(0)];
    assert_eq!(run_with(limits, input), expected);
    for split in 0..=input.len() {
        let (first, second) = input.split_at(split);
        assert_eq!(run_pieces(limits, &[first, second]), expected, "split at {split}");
    }
    assert_eq!(rejection.reply(), Reply::error("ERR too many arguments in request (limit is 2)"));
}

#[test]
fn skipped_arguments_are_dropped_as_they_arrive() {
    let limits = Limits { arguments_max: 1, value_bytes_max: 100, ..Limits::default() };
    let mut parser = Parser::new(limits);
    assert_eq!(parser.parse(b"*2\r\n$100\r\n0123456789"), Parsed::Incomplete { consumed: 20 });
    assert_eq!(parser.held_bytes(), 0);
}

#[test]
fn skipped_commands_still_check_their_framing() {
    let limits = Limits { arguments_max: 1, ..Limits::default() };
    assert_eq!(
        run_with(limits, b"*2\r\n$1\r\na\r\nxx\r\n"),
        [Outcome::Failed(ProtocolError::ExpectedDollar { got: b'x' })]
    );
    assert_eq!(run_with(limits, b"*2\r\n$33554433\r\n"), [Outcome::Failed(ProtocolError::InvalidBulkLength)]);
    assert_eq!(run_with(limits, b"*2\r\n$1\r\nabc"), [Outcome::Failed(ProtocolError::BulkNotTerminated)]);
}

#[test]
fn too_many_inline_arguments_are_rejected_and_the_line_skipped() {
    let limits = Limits { arguments_max: 2, ..Limits::default() };
    assert_eq!(
        run_with(limits, b"a b c\r\nGET k\r\n"),
        [
            Outcome::Rejected(Rejection::TooManyArguments { limit: 2 }),
            command(&["GET", "k"]),
            Outcome::Waiting(0)
        ]
    );
}

#[test]
fn protocol_error_is_returned_again_after_it_is_reported() {
    let mut parser = Parser::new(Limits::default());
    let error = ProtocolError::InvalidMultibulkLength;
    assert_eq!(parser.parse(b"*?\r\n"), Parsed::Failed { error: error.clone() });
    assert_eq!(parser.parse(b"PING\r\n"), Parsed::Failed { error });
}

#[test]
fn fuzz_body_survives_random_and_mutated_inputs() {
    let too_many_arguments = [b"*65\r\n".to_vec(), b"$1\r\na\r\n".repeat(65), b"PING\r\n".to_vec()].concat();
    let seeds: [&[u8]; 4] = [
        PIPELINE,
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nSET \"a\\x41\" 'b\\'c'\r\n\r\n*0\r\n",
        &too_many_arguments,
        b"*1\r\n$4097\r\n",
    ];
    assert_eq!(fuzz::resp_parse(seeds[0]), 4);
    assert_eq!(fuzz::resp_parse(seeds[1]), 2);
    assert_eq!(fuzz::resp_parse(seeds[2]), 1, "the over-limit command is skipped, PING is read");
    assert_eq!(fuzz::resp_parse(seeds[3]), 0, "over the fuzz value limit");
    let alphabet = b"*$\r\n0123456789-\"' \\xaA";
    let mut rng = SplitMix64::new(0x5eed);
    for round in 0..4000 {
        let random: Vec<u8> = (0..rng.range(0, 300))
            .map(|_| {
                // Half the rounds draw from RESP's own bytes, to get past the first check.
                if round % 2 == 0 {
                    rng.next_u64() as u8
                } else {
                    alphabet[rng.range(0, alphabet.len() as u64) as usize]
                }
            })
            .collect();
        let mut mutated = seeds[round % seeds.len()].to_vec();
        for _ in 0..rng.range(1, 4) {
            let at = rng.range(0, mutated.len() as u64) as usize;
            match rng.range(0, 4) {
                0 => mutated[at] ^= 1 << rng.range(0, 8),
                1 => mutated.truncate(at),
                2 => mutated.insert(at, alphabet[rng.range(0, alphabet.len() as u64) as usize]),
                _ => mutated.insert(at, rng.next_u64() as u8),
            }
            if mutated.is_empty() {
                break;
            }
        }
        fuzz::resp_parse(&random);
        fuzz::resp_parse(&mutated);
    }
}

#[test]
fn take_requests_returns_whole_commands_in_order_and_stops_after_quit() {
    let mut parser = Parser::new(Limits::default());
    let mut buffer = b"PING\r\n*1\r\n$4\r\nquit\r\nPING\r\n".to_vec();
    let requests = parser.take_requests(&mut buffer, 1 << 20);
    let expected = vec![Request::Command(vec![b"PING".to_vec()]), Request::Command(vec![b"quit".to_vec()])];
    assert_eq!(requests.items, expected);
    assert!(requests.close, "QUIT closes the connection");
    assert_eq!(buffer, b"PING\r\n", "nothing after QUIT is taken");
}

#[test]
fn take_requests_closes_a_connection_holding_too_much_unparsed_input() {
    let mut parser = Parser::new(Limits::default());
    let mut buffer = b"*2\r\n$3\r\nGET\r\n$100\r\n0123456789".to_vec();
    let requests = parser.take_requests(&mut buffer, 8);
    assert!(requests.close);
    let [Request::Answered(Reply::Error(text))] = requests.items.as_slice() else { panic!("{requests:?}") };
    assert!(text.starts_with("ERR query buffer over 8 bytes"), "{text}");
    let mut roomy = Parser::new(Limits::default());
    let mut buffer = b"*2\r\n$3\r\nGET\r\n$100\r\n0123456789".to_vec();
    let requests = roomy.take_requests(&mut buffer, 1 << 20);
    assert_eq!(requests, Requests::default(), "under the limit: wait for the rest");
}
