//! Length + checksum framing shared by the write-ahead log and the peer
//! wire: `u32 length | u32 crc32 | payload`, little-endian.
//!
//! The CRC (crc32fast, IEEE) covers the four length bytes and the payload,
//! so a damaged length is caught as surely as a damaged payload. Payloads are
//! never empty: a zero length is how zeroed (preallocated or never written)
//! space reads, and decodes as [`FrameError::Empty`], never as a frame.
//! Decoding never allocates the claimed size and never panics; encoding a
//! payload over [`FRAME_PAYLOAD_BYTES_MAX`] is a [`FrameTooLarge`] error of
//! that encode, never a panic and never a partial frame.

use std::fmt;

pub const FRAME_HEADER_BYTES: usize = 8;
/// The largest payload a frame may carry (64 MiB).
pub const FRAME_PAYLOAD_BYTES_MAX: u32 = 64 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// More bytes are needed: at least `needed` in all.
    Incomplete { needed: usize },
    /// A zero length: zeroed or unwritten space, not a frame.
    Empty,
    /// The length is over `FRAME_PAYLOAD_BYTES_MAX`.
    TooLarge { length: u32 },
    /// The checksum does not match the length and payload.
    BadChecksum { stored: u32, computed: u32 },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Incomplete { needed } => write!(f, "incomplete frame: {needed} bytes needed"),
            FrameError::Empty => write!(f, "zero-length frame"),
            FrameError::TooLarge { length } => {
                write!(f, "frame length {length} over the maximum {FRAME_PAYLOAD_BYTES_MAX}")
            }
            FrameError::BadChecksum { stored, computed } => {
                write!(f, "frame checksum {stored:#010x} does not match computed {computed:#010x}")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// A payload too large for one frame: nothing was encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameTooLarge {
    pub payload_bytes: u64,
}

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.payload_bytes;
        write!(f, "a payload of {bytes} bytes is over the frame maximum of {FRAME_PAYLOAD_BYTES_MAX} bytes")
    }
}

impl std::error::Error for FrameTooLarge {}

fn checksum(length: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&length);
    hasher.update(payload);
    hasher.finalize()
}

/// Appends one frame holding `payload` to `out`; a payload over the maximum
/// leaves `out` as it was. An empty payload is a programmer mistake (every
/// encoder of ours writes at least a tag or version byte).
pub fn encode(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameTooLarge> {
    assert!(!payload.is_empty(), "frames carry a payload");
    let too_large = FrameTooLarge { payload_bytes: payload.len() as u64 };
    let length = u32::try_from(payload.len()).ok().filter(|l| *l <= FRAME_PAYLOAD_BYTES_MAX);
    let length = length.ok_or(too_large)?.to_le_bytes();
    out.reserve(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&length);
    out.extend_from_slice(&checksum(length, payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Decodes the frame at the start of `bytes`: its payload and the bytes it
/// occupies.
pub fn decode(bytes: &[u8]) -> Result<(&[u8], usize), FrameError> {
    let Some(header) = bytes.get(..FRAME_HEADER_BYTES) else {
        return Err(FrameError::Incomplete { needed: FRAME_HEADER_BYTES });
    };
    let length: [u8; 4] = header[..4].try_into().expect("4 bytes");
    let stored = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let payload_bytes = u32::from_le_bytes(length);
    if payload_bytes == 0 {
        return Err(FrameError::Empty);
    }
    if payload_bytes > FRAME_PAYLOAD_BYTES_MAX {
        return Err(FrameError::TooLarge { length: payload_bytes });
    }
    let total = FRAME_HEADER_BYTES + payload_bytes as usize;
    let Some(payload) = bytes.get(FRAME_HEADER_BYTES..total) else {
        return Err(FrameError::Incomplete { needed: total });
    };
    let computed = checksum(length, payload);
    if computed != stored {
        return Err(FrameError::BadChecksum { stored, computed });
    }
    Ok((payload, total))
}

/// Byte strings in serde types that are framed (`#[serde(with =
/// "crate::frame::bytes")]`): serde's default writes a `Vec<u8>` one
/// element at a time, which for a value of tens of MiB costs more than an
/// election timeout in every encode and decode on its way (forward, WAL,
/// each follower's append, apply). As bytes, postcard copies them whole.
/// The encoding is the same either way (a varint length, then the bytes),
/// so records and messages written before read the same.
pub mod bytes {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::Serializer;
    use std::fmt;

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }

    pub(super) struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }

        /// Formats without byte strings give a sequence; grown as it is
        /// read, never by the length it claims.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut bytes = Vec::new();
            while let Some(byte) = seq.next_element()? {
                bytes.push(byte);
            }
            Ok(bytes)
        }
    }
}

/// An optional byte string (a bulk reply, `None` for nil), as [`bytes`].
pub mod optional_bytes {
    use serde::de::{Deserializer, Visitor};
    use serde::Serializer;
    use std::fmt;

    struct Bytes<'a>(&'a [u8]);

    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, serializer: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_some(&Bytes(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
        struct OptionVisitor;

        impl<'de> Visitor<'de> for OptionVisitor {
            type Value = Option<Vec<u8>>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("an optional byte string")
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<Option<Vec<u8>>, E> {
                Ok(None)
            }

            fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
                super::bytes::deserialize(deserializer).map(Some)
            }
        }

        deserializer.deserialize_option(OptionVisitor)
    }
}

/// A list of byte strings (a command's arguments), each as [`bytes`].
pub mod byte_lists {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::ser::{SerializeSeq, Serializer};
    use serde::Deserialize;
    use std::fmt;

    struct Bytes<'a>(&'a [u8]);

    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    struct ByteBuf(Vec<u8>);

    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ByteBuf, D::Error> {
            deserializer.deserialize_byte_buf(super::bytes::BytesVisitor).map(ByteBuf)
        }
    }

    pub fn serialize<S: Serializer>(lists: &[Vec<u8>], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(lists.len()))?;
        for bytes in lists {
            seq.serialize_element(&Bytes(bytes))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Vec<u8>>, D::Error> {
        struct ListsVisitor;

        impl<'de> Visitor<'de> for ListsVisitor {
            type Value = Vec<Vec<u8>>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a list of byte strings")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Vec<u8>>, A::Error> {
                let mut lists = Vec::new();
                while let Some(ByteBuf(bytes)) = seq.next_element()? {
                    lists.push(bytes);
                }
                Ok(lists)
            }
        }

        deserializer.deserialize_seq(ListsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_strings_encode_as_serde_writes_a_vec_of_bytes_and_read_back() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Plain {
            one: Vec<u8>,
            many: Vec<Vec<u8>>,
            some: Option<Vec<u8>>,
            none: Option<Vec<u8>>,
        }
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Whole {
            #[serde(with = "bytes")]
            one: Vec<u8>,
            #[serde(with = "byte_lists")]
            many: Vec<Vec<u8>>,
            #[serde(with = "optional_bytes")]
            some: Option<Vec<u8>>,
            #[serde(with = "optional_bytes")]
            none: Option<Vec<u8>>,
        }
        let one: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let many = vec![Vec::new(), b"SET".to_vec(), vec![0xff; 200]];
        let some = Some(b"value".to_vec());
        let plain = Plain { one: one.clone(), many: many.clone(), some: some.clone(), none: None };
        let whole = Whole { one, many, some, none: None };
        let (plain, whole_bytes) =
            (postcard::to_stdvec(&plain).unwrap(), postcard::to_stdvec(&whole).unwrap());
        assert_eq!(plain, whole_bytes, "records and messages written before read the same");
        assert_eq!(postcard::from_bytes::<Whole>(&plain).unwrap(), whole);
        for cut in 0..whole_bytes.len() {
            assert!(postcard::from_bytes::<Whole>(&whole_bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_frame_round_trips_and_reports_its_size() {
        let mut out = Vec::new();
        encode(b"hello", &mut out).unwrap();
        encode(b"world!", &mut out).unwrap();
        let (first, used) = decode(&out).unwrap();
        assert_eq!((first, used), (&b"hello"[..], 13));
        assert_eq!(decode(&out[used..]).unwrap().0, b"world!");
    }

    #[test]
    fn every_truncation_is_incomplete_and_every_bit_flip_is_caught() {
        let mut out = Vec::new();
        encode(b"some payload", &mut out).unwrap();
        for cut in 0..out.len() {
            assert!(matches!(decode(&out[..cut]), Err(FrameError::Incomplete { .. })), "cut at {cut}");
        }
        for bit in 0..out.len() * 8 {
            let mut damaged = out.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&damaged).is_err(), "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn zeroed_space_and_huge_lengths_are_not_frames() {
        assert_eq!(decode(&[0; 64]), Err(FrameError::Empty));
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 4]);
        assert_eq!(decode(&huge), Err(FrameError::TooLarge { length: u32::MAX }));
    }

    #[test]
    fn the_largest_payload_encodes_and_one_byte_more_is_an_error_that_writes_nothing() {
        let largest = vec![7u8; FRAME_PAYLOAD_BYTES_MAX as usize];
        let mut out = b"before".to_vec();
        encode(&largest, &mut out).unwrap();
        assert_eq!(decode(&out[6..]).unwrap().1, FRAME_HEADER_BYTES + largest.len());

        let over = vec![7u8; FRAME_PAYLOAD_BYTES_MAX as usize + 1];
        let mut out = b"before".to_vec();
        let error = encode(&over, &mut out).unwrap_err();
        assert_eq!(error, FrameTooLarge { payload_bytes: u64::from(FRAME_PAYLOAD_BYTES_MAX) + 1 });
        assert_eq!(out, b"before", "nothing of the frame was written");
        let text = error.to_string();
        assert!(text.contains("67108865") && text.contains("67108864"), "{text}");
    }
}
