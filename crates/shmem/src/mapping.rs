//! The one way this crate maps memory: anonymous, shared (so children inherit it through
//! fork and see each other's writes), zero-filled, unmapped when its owner is dropped.

use std::io;

/// A `MAP_SHARED | MAP_ANONYMOUS` region of `len` bytes (at least one).
pub(crate) struct Mapping {
    pub(crate) base: *mut u8,
    pub(crate) len: usize,
}

impl Mapping {
    pub(crate) fn new(len: usize) -> io::Result<Mapping> {
        let len = len.max(1);
        // SAFETY: anonymous mapping with no address hint; the result is checked against
        // MAP_FAILED before use. Anonymous mappings are zero-filled, and every type this
        // crate places in one is valid when all-zero (atomics and byte arrays).
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            base: base as *mut u8,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned; nothing refers to the region
        // once its owner is dropped (children have their own copy of the mapping).
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.len);
        }
    }
}
