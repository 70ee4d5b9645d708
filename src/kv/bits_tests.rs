//! Bitmaps and LCS: edge cases of Redis 7.0's `tests/unit/bitops.tcl`,
//! `tests/unit/bitfield.tcl` and the LCS tests of `tests/unit/type/string.tcl`.
//! `tests/redis_diff.rs` checks the replies byte for byte against a real
//! server on random commands.

use super::super::tests::{bulk, cmd, int, T0};
use super::super::*;

fn run(store: &mut Store, words: &[&str]) -> Reply {
    super::super::tests::run(store, T0, words)
}

fn array(items: Vec<Reply>) -> Reply {
    Reply::Array(Some(items))
}

#[test]
fn setbit_grows_the_string_and_answers_the_previous_bit() {
    let mut store = Store::default();
    assert_eq!(run(&mut store, &["SETBIT", "b", "7", "1"]), int(0));
    assert_eq!(run(&mut store, &["GET", "b"]), bulk("\x01"));
    assert_eq!(run(&mut store, &["SETBIT", "b", "7", "0"]), int(1));
    assert_eq!(run(&mut store, &["SETBIT", "b", "17", "1"]), int(0));
    assert_eq!(store.read(&cmd(&["GET", "b"]), T0), Reply::bulk(vec![0u8, 0, 0x40]));
    assert_eq!(run(&mut store, &["GETBIT", "b", "17"]), int(1));
    assert_eq!(run(&mut store, &["GETBIT", "b", "100000"]), int(0));
    assert_eq!(run(&mut store, &["GETBIT", "missing", "0"]), int(0));
}

#[test]
fn bit_offsets_are_bounded_by_the_512_mib_string_limit() {
    let mut store = Store::default();
    let error = Reply::error("ERR bit offset is not an integer or out of range");
    for offset in ["-1", "4294967296", "abc", "", "1.5"] {
        assert_eq!(run(&mut store, &["SETBIT", "b", offset, "1"]), error, "{offset:?}");
        assert_eq!(run(&mut store, &["GETBIT", "b", offset]), error, "{offset:?}");
    }
    let bit_error = Reply::error("ERR bit is not an integer or out of range");
    assert_eq!(run(&mut store, &["SETBIT", "b", "0", "2"]), bit_error);
    assert_eq!(run(&mut store, &["SETBIT", "b", "0", "-1"]), bit_error);
    assert_eq!(run(&mut store, &["EXISTS", "b"]), int(0), "nothing created by a refused SETBIT");
    // A field that starts inside the limit but runs past it.
    assert_eq!(run(&mut store, &["BITFIELD", "b", "SET", "i64", "4294967290", "1"]), error);
    assert_eq!(run(&mut store, &["EXISTS", "b"]), int(0));
    assert_eq!(run(&mut store, &["GETBIT", "b", "4294967295"]), int(0), "the last bit may be read");
}

#[test]
fn bit_commands_answer_wrongtype_on_other_types_after_checking_their_arguments() {
    let mut store = Store::default();
    run(&mut store, &["HSET", "h", "f", "v"]);
    let wrong_type = Reply::error(WRONG_TYPE);
    assert_eq!(run(&mut store, &["SETBIT", "h", "0", "1"]), wrong_type);
    assert_eq!(run(&mut store, &["SETBIT", "h", "-1", "1"]), Reply::error(BIT_OFFSET_TEXT));
    assert_eq!(run(&mut store, &["GETBIT", "h", "0"]), wrong_type);
    assert_eq!(run(&mut store, &["BITCOUNT", "h", "x", "y"]), wrong_type, "the key is looked up first");
    assert_eq!(run(&mut store, &["BITPOS", "h", "2"]), Reply::error("ERR The bit argument must be 1 or 0."));
    assert_eq!(run(&mut store, &["BITPOS", "h", "1"]), wrong_type);
    assert_eq!(run(&mut store, &["BITOP", "AND", "d", "missing", "h"]), wrong_type);
    assert_eq!(run(&mut store, &["BITFIELD", "h", "GET", "u8", "0"]), wrong_type);
    assert_eq!(run(&mut store, &["BITFIELD_RO", "h", "GET", "u8", "0"]), wrong_type);
    let not_strings = Reply::error("ERR The specified keys must contain string values");
    assert_eq!(run(&mut store, &["LCS", "missing", "h"]), not_strings);
}

const BIT_OFFSET_TEXT: &str = "ERR bit offset is not an integer or out of range";

#[test]
fn bitcount_counts_over_byte_and_bit_ranges_and_a_missing_key_counts_zero() {
    let mut store = Store::default();
    run(&mut store, &["SET", "s", "foobar"]);
    assert_eq!(run(&mut store, &["BITCOUNT", "s"]), int(26));
    assert_eq!(run(&mut store, &["BITCOUNT", "s", "0", "0"]), int(4));
    assert_eq!(run(&mut store, &["BITCOUNT", "s", "1", "1"]), int(6));
    assert_eq!(run(&mut store, &["BITCOUNT", "s", "1", "1", "BYTE"]), int(6));
    assert_eq!(run(&mut store, &["BITCOUNT", "s", "5", "30", "BIT"]), int(17));
    assert_eq!(run(&mut store, &["BITCOUNT", "s", "-2", "-1"]), int(7));
    assert_eq!(run(&mut store, &["BITCOUNT", "s", "-1", "-2"]), int(0));
    assert_eq!(
        run(&mut store, &["BITCOUNT", "s", "-1", "-2", "nonsense"]),
        int(0),
        "answered before the unit"
    );
    assert_eq!(run(&mut store, &["BITCOUNT", "s", "0", "1000"]), int(26));
    assert_eq!(run(&mut store, &["BITCOUNT", "s", "0", "-1", "bit"]), int(26));
    assert_eq!(run(&mut store, &["BITCOUNT", "s", "0"]), Reply::error("ERR syntax error"));
    assert_eq!(run(&mut store, &["BITCOUNT", "s", "0", "1", "word"]), Reply::error("ERR syntax error"));
    assert_eq!(run(&mut store, &["BITCOUNT", "missing", "x"]), int(0));
    let min = i64::MIN.to_string();
    assert_eq!(store.read(&cmd(&["BITCOUNT", "s", &min, "-1", "BIT"]), T0), int(26));
}

#[test]
fn bitpos_treats_the_string_as_zero_padded_only_without_an_end() {
    let mut store = Store::default();
    run(&mut store, &["SET", "ones", "\u{7f}"]);
    store.apply(&[b"SET".to_vec(), b"ones".to_vec(), vec![0xff, 0xff, 0xff]], T0);
    assert_eq!(run(&mut store, &["BITPOS", "ones", "0"]), int(24), "the first bit past the end");
    assert_eq!(run(&mut store, &["BITPOS", "ones", "0", "1"]), int(24));
    assert_eq!(run(&mut store, &["BITPOS", "ones", "0", "0", "-1"]), int(-1), "an end is given");
    assert_eq!(run(&mut store, &["BITPOS", "ones", "0", "0", "-1", "BIT"]), int(-1));
    assert_eq!(run(&mut store, &["BITPOS", "ones", "1", "7", "-1", "BIT"]), int(7));
    store.apply(&[b"SET".to_vec(), b"s".to_vec(), vec![0x00, 0xff, 0xf0]], T0);
    assert_eq!(run(&mut store, &["BITPOS", "s", "1"]), int(8));
    assert_eq!(run(&mut store, &["BITPOS", "s", "1", "2"]), int(16));
    assert_eq!(run(&mut store, &["BITPOS", "s", "0", "1"]), int(20));
    assert_eq!(run(&mut store, &["BITPOS", "s", "1", "3", "4", "BIT"]), int(-1));
    assert_eq!(run(&mut store, &["BITPOS", "s", "1", "-5", "-1", "BIT"]), int(19));
    assert_eq!(run(&mut store, &["BITPOS", "s", "1", "5", "1"]), int(-1), "an empty range");
    assert_eq!(run(&mut store, &["BITPOS", "missing", "0", "x"]), int(0));
    assert_eq!(run(&mut store, &["BITPOS", "missing", "1"]), int(-1));
    run(&mut store, &["SET", "empty", ""]);
    assert_eq!(run(&mut store, &["BITPOS", "empty", "0"]), int(-1));
    assert_eq!(run(&mut store, &["BITPOS", "s", "1", "0", "1", "2", "3"]), Reply::error("ERR syntax error"));
}

#[test]
fn bitop_pads_shorter_strings_with_zeros_and_deletes_an_empty_destination() {
    let mut store = Store::default();
    store.apply(&[b"SET".to_vec(), b"a".to_vec(), vec![0xf0, 0x0f, 0xaa]], T0);
    store.apply(&[b"SET".to_vec(), b"b".to_vec(), vec![0xff]], T0);
    assert_eq!(run(&mut store, &["BITOP", "AND", "d", "a", "b"]), int(3));
    assert_eq!(store.read(&cmd(&["GET", "d"]), T0), Reply::bulk(vec![0xf0, 0, 0]));
    assert_eq!(run(&mut store, &["BITOP", "or", "d", "a", "b", "missing"]), int(3));
    assert_eq!(store.read(&cmd(&["GET", "d"]), T0), Reply::bulk(vec![0xff, 0x0f, 0xaa]));
    assert_eq!(run(&mut store, &["BITOP", "XOR", "d", "a", "b"]), int(3));
    assert_eq!(store.read(&cmd(&["GET", "d"]), T0), Reply::bulk(vec![0x0f, 0x0f, 0xaa]));
    assert_eq!(run(&mut store, &["BITOP", "NOT", "d", "a"]), int(3));
    assert_eq!(store.read(&cmd(&["GET", "d"]), T0), Reply::bulk(vec![0x0f, 0xf0, 0x55]));
    let not_error = Reply::error("ERR BITOP NOT must be called with a single source key.");
    assert_eq!(run(&mut store, &["BITOP", "NOT", "d", "a", "b"]), not_error);
    assert_eq!(run(&mut store, &["BITOP", "NAND", "d", "a"]), Reply::error("ERR syntax error"));
    run(&mut store, &["EXPIRE", "d", "100"]);
    assert_eq!(run(&mut store, &["BITOP", "AND", "d", "a"]), int(3));
    assert_eq!(run(&mut store, &["TTL", "d"]), int(-1), "the destination is set anew");
    assert_eq!(run(&mut store, &["BITOP", "OR", "d", "missing", "other"]), int(0));
    assert_eq!(run(&mut store, &["EXISTS", "d"]), int(0), "an empty result deletes the destination");
}

#[test]
fn bitfield_wraps_saturates_or_fails_as_redis_does() {
    let mut store = Store::default();
    let reply = |items: Vec<Reply>| array(items);
    assert_eq!(
        run(&mut store, &["BITFIELD", "b", "SET", "u8", "0", "255", "GET", "u8", "0"]),
        reply(vec![int(0), int(255)])
    );
    assert_eq!(run(&mut store, &["BITFIELD", "b", "INCRBY", "u8", "0", "10"]), reply(vec![int(9)]), "wraps");
    let sat = &["BITFIELD", "b", "OVERFLOW", "SAT", "INCRBY", "u8", "0", "300", "INCRBY", "i8", "0", "-300"];
    assert_eq!(run(&mut store, sat), reply(vec![int(255), int(-128)]));
    let fail = &["BITFIELD", "b", "OVERFLOW", "FAIL", "INCRBY", "i8", "0", "-1", "INCRBY", "u8", "0", "-100"];
    assert_eq!(run(&mut store, fail), reply(vec![Reply::nil(), int(28)]), "the failed one writes nothing");
    assert_eq!(
        run(&mut store, &["BITFIELD", "b", "SET", "i64", "0", "-1", "GET", "u63", "1"]),
        reply(vec![int(28 << 56), int(i64::MAX)])
    );
    assert_eq!(
        run(&mut store, &["BITFIELD", "b", "INCRBY", "i64", "0", "-9223372036854775808"]),
        reply(vec![int(i64::MAX)])
    );
    assert_eq!(
        run(&mut store, &["BITFIELD", "b", "SET", "u4", "#3", "15", "GET", "u16", "0"]),
        reply(vec![int(15), int(0x7fff)])
    );
    assert_eq!(
        run(&mut store, &["BITFIELD", "new", "OVERFLOW", "FAIL", "SET", "u2", "0", "9"]),
        reply(vec![Reply::nil()])
    );
    assert_eq!(
        store.read(&cmd(&["GET", "new"]), T0),
        Reply::bulk(vec![0]),
        "created even when every write fails"
    );
    assert_eq!(run(&mut store, &["BITFIELD", "missing"]), reply(vec![]));
    assert_eq!(run(&mut store, &["BITFIELD", "missing", "GET", "i8", "0"]), reply(vec![int(0)]));
    assert_eq!(run(&mut store, &["EXISTS", "missing"]), int(0), "GET alone creates nothing");
}

#[test]
fn bitfield_argument_errors_are_redis_texts() {
    let mut store = Store::default();
    let type_error = Reply::error(
        "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
    );
    for bad in ["u64", "i65", "i0", "x8", "", "u", "i08"] {
        assert_eq!(run(&mut store, &["BITFIELD", "b", "GET", bad, "0"]), type_error, "{bad:?}");
    }
    assert_eq!(run(&mut store, &["BITFIELD", "b", "GET", "u8"]), Reply::error("ERR syntax error"));
    assert_eq!(
        run(&mut store, &["BITFIELD", "b", "OVERFLOW", "up"]),
        Reply::error("ERR Invalid OVERFLOW type specified")
    );
    assert_eq!(run(&mut store, &["BITFIELD", "b", "GET", "u8", "#-1"]), Reply::error(BIT_OFFSET_TEXT));
    assert_eq!(
        run(&mut store, &["BITFIELD", "b", "SET", "u8", "0", "x"]),
        Reply::error("ERR value is not an integer or out of range")
    );
    let read_only = Reply::error("ERR BITFIELD_RO only supports the GET subcommand");
    assert_eq!(run(&mut store, &["BITFIELD_RO", "b", "GET", "u8", "0", "SET", "u8", "0", "1"]), read_only);
    assert_eq!(run(&mut store, &["EXISTS", "b"]), int(0));
}

#[test]
fn lcs_finds_the_common_subsequence_its_length_and_its_ranges() {
    let mut store = Store::default();
    run(&mut store, &["MSET", "a", "ohmytext", "b", "mynewtext"]);
    assert_eq!(run(&mut store, &["LCS", "a", "b"]), bulk("mytext"));
    assert_eq!(run(&mut store, &["LCS", "a", "b", "LEN"]), int(6));
    let range = |a: i64, b: i64| array(vec![int(a), int(b)]);
    let matches = array(vec![
        array(vec![range(4, 7), range(5, 8), int(4)]),
        array(vec![range(2, 3), range(0, 1), int(2)]),
    ]);
    let expected = Reply::Map(vec![(bulk("matches"), matches), (bulk("len"), int(6))]);
    assert_eq!(run(&mut store, &["LCS", "a", "b", "IDX", "WITHMATCHLEN"]), expected);
    let long_only = array(vec![array(vec![range(4, 7), range(5, 8)])]);
    let expected = Reply::Map(vec![(bulk("matches"), long_only), (bulk("len"), int(6))]);
    assert_eq!(run(&mut store, &["LCS", "a", "b", "IDX", "MINMATCHLEN", "3"]), expected);
    let both = Reply::error("ERR If you want both the length and indexes, please just use IDX.");
    assert_eq!(run(&mut store, &["LCS", "a", "b", "LEN", "IDX"]), both);
    assert_eq!(run(&mut store, &["LCS", "a", "missing"]), bulk(""));
}
