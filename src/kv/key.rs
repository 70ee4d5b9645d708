//! Keys as the store holds them: bytes, kept inline when short. Hash
//! fields and values are held the same way (`hash`).
//!
//! A key sits in two indexes (by name and by creation sequence). As a
//! `Vec<u8>` it costs 24 bytes plus a heap allocation in each; most keys are
//! short, so up to [`INLINE_BYTES_MAX`] bytes live inside the 24-byte value
//! itself: no allocation, no copy on the heap, and a B-tree search compares
//! keys without following a pointer per comparison (which was the cache
//! miss dominating SET's cost in `benches/cluster.rs` profiles). Longer
//! keys take one exact-size heap allocation. Order, equality and hashing
//! are those of the bytes, so `&[u8]` looks a `Key` up (`Borrow`).

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Longest key stored inline: 24 bytes minus the length and the tag.
pub(super) const INLINE_BYTES_MAX: usize = 22;

#[derive(Clone)]
pub(super) struct Key(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE_BYTES_MAX] },
    Heap(Box<[u8]>),
}

// The point of the type: two indexes' worth of keys in 24 bytes each.
const _: () = assert!(std::mem::size_of::<Key>() == 24);

impl Key {
    pub(super) fn new(bytes: &[u8]) -> Key {
        if bytes.len() <= INLINE_BYTES_MAX {
            let mut inline = [0u8; INLINE_BYTES_MAX];
            inline[..bytes.len()].copy_from_slice(bytes);
            Key(Repr::Inline { len: bytes.len() as u8, bytes: inline })
        } else {
            Key(Repr::Heap(bytes.into()))
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(bytes) => bytes,
        }
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_and_compare_as_their_bytes_whether_inline_or_not() {
        let long = vec![b'k'; INLINE_BYTES_MAX + 1];
        let texts: [&[u8]; 6] = [b"", b"a", b"ab", b"b", &long[..INLINE_BYTES_MAX], &long];
        for a in texts {
            assert_eq!(Key::new(a).as_bytes(), a);
            for b in texts {
                assert_eq!(Key::new(a).cmp(&Key::new(b)), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(Key::new(a) == Key::new(b), a == b);
            }
        }
    }

    #[test]
    fn a_byte_slice_finds_its_key_in_a_map() {
        let mut map = std::collections::BTreeMap::new();
        map.insert(Key::new(b"short"), 1);
        map.insert(Key::new(&[b'x'; 40]), 2);
        assert_eq!(map.get(&b"short"[..]), Some(&1));
        assert_eq!(map.get(&[b'x'; 40][..]), Some(&2));
        assert_eq!(map.get(&b"absent"[..]), None);
    }
}
