//! Fixed-size text fields in shared memory. Each byte is an atomic so that a reader in
//! another process never races a writer in the undefined-behaviour sense; a version
//! counter lets readers retry when they caught a writer mid-update.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

#[repr(C)]
pub struct ShmText<const N: usize> {
    version: AtomicU32,
    len: AtomicU32,
    bytes: [AtomicU8; N],
}

impl<const N: usize> ShmText<N> {
    /// Stores `s`, truncated to N bytes on a character boundary.
    pub fn set(&self, s: &str) {
        let mut end = s.len().min(N);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.set_parts(&[&s.as_bytes()[..end]]);
    }

    /// Stores raw bytes, truncated to N bytes without cutting a UTF-8 sequence in two
    /// (readers decode lossily, so other bytes are kept as they came).
    pub fn set_bytes(&self, b: &[u8]) {
        self.set_parts(&[b]);
    }

    /// [`ShmText::set_bytes`] of the concatenation of `parts`, without building it.
    pub fn set_parts(&self, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let byte_at = |mut i: usize| {
            for p in parts {
                if i < p.len() {
                    return p[i];
                }
                i -= p.len();
            }
            0
        };
        let mut end = total.min(N);
        if end < total {
            // back off over continuation bytes to the start of the cut character
            while end > 0 && byte_at(end) & 0xC0 == 0x80 {
                end -= 1;
            }
        }
        self.version.fetch_add(1, Ordering::AcqRel); // odd: write in progress
        let mut at = 0;
        for p in parts {
            let take = p.len().min(end - at);
            for (slot, v) in self.bytes[at..at + take].iter().zip(&p[..take]) {
                slot.store(*v, Ordering::Relaxed);
            }
            at += take;
        }
        self.len.store(end as u32, Ordering::Relaxed);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Reads the text; retries a few times if a writer was active, then returns what
    /// it saw (these fields are informational, never used for decisions).
    pub fn get(&self) -> String {
        let mut out = Vec::with_capacity(N);
        for _ in 0..8 {
            let v1 = self.version.load(Ordering::Acquire);
            out.clear();
            let len = (self.len.load(Ordering::Relaxed) as usize).min(N);
            out.extend(self.bytes[..len].iter().map(|b| b.load(Ordering::Relaxed)));
            let v2 = self.version.load(Ordering::Acquire);
            if v1 == v2 && v1.is_multiple_of(2) {
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::ShmText;

    fn text<const N: usize>() -> ShmText<N> {
        ShmText {
            version: Default::default(),
            len: Default::default(),
            bytes: std::array::from_fn(|_| Default::default()),
        }
    }

    #[test]
    fn parts_are_joined_and_cut_on_a_character_boundary() {
        let t = text::<8>();
        t.set_parts(&[b"Bind: ", b"ab"]);
        assert_eq!(t.get(), "Bind: ab");
        t.set_parts(&[b"Parse: ", "é1".as_bytes()]);
        assert_eq!(
            t.get(),
            "Parse: ",
            "a two-byte character over the end is left out"
        );
        t.set_parts(&[b"", b"abcdefghij"]);
        assert_eq!(t.get(), "abcdefgh");
        t.set_parts(&[]);
        assert_eq!(t.get(), "");
    }
}
