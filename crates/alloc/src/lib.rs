//! chinwag's global allocator: mimalloc, called the way its fast paths expect.
//!
//! The `mimalloc` crate hands every request to `mi_malloc_aligned`, even those that need no more
//! alignment than any block has. In mimalloc 3 that costs twice: the aligned entry point does
//! more work per call, and whenever it cannot take a block from the current page (the page is
//! used up) it falls back to over-allocating, which also marks the page as holding interior
//! pointers, so that every later `free` in that page takes a slower path. callgrind counted the
//! aligned path at about 60 instructions per allocation in the server's hot loops, with 8% of
//! calls over-allocating.
//!
//! Here a request that needs no more than word alignment (nearly all: strings, vectors of
//! pointers and integers, boxed structs) goes to `mi_malloc` (`mi_zalloc`, `mi_realloc`), and
//! only the rare more-aligned one to the aligned calls.
//!
//! This is the only crate in the workspace with `unsafe` code: implementing [`GlobalAlloc`]
//! needs it.

#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment of every block mimalloc hands out: block sizes are whole machine words, and
/// pages start aligned. (Not 16, as glibc gives: a 24-byte request gets a 24-byte block.)
const PLAIN_ALIGN: usize = core::mem::size_of::<usize>();

/// Whether any block is aligned enough for `align`.
#[inline]
fn plain_is_enough(align: usize) -> bool {
    align <= PLAIN_ALIGN
}

/// mimalloc as the global allocator. Built without transparent huge pages (`no_thp`): with
/// them, each thread's first touch of an arena filled 2 MiB at a time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocator;

/// A new block for `layout`, zeroed if asked: a plain one when word alignment is enough, else
/// an aligned one.
///
/// SAFETY: mimalloc accepts any size and alignment that `Layout` allows; the caller owns the
/// block (or null) and gives it back through `dealloc` or `realloc`.
#[allow(unsafe_code)]
#[inline]
unsafe fn block(layout: Layout, zeroed: bool) -> *mut u8 {
    let (size, align) = (layout.size(), layout.align());
    // SAFETY: as above.
    unsafe {
        match (plain_is_enough(align), zeroed) {
            (true, false) => mi::mi_malloc(size),
            (true, true) => mi::mi_zalloc(size),
            (false, false) => mi::mi_malloc_aligned(size, align),
            (false, true) => mi::mi_zalloc_aligned(size, align),
        }
        .cast()
    }
}

// SAFETY: every method passes its request to mimalloc, which returns null or a block of at
// least the requested size; a block is returned to mimalloc only through `mi_free` or
// `mi_realloc*`, which accept blocks from any of its allocation calls. A block from
// `mi_malloc`/`mi_zalloc`/`mi_realloc` is word-aligned, which is at least the alignment asked
// for whenever `plain_is_enough` holds; otherwise the aligned calls are used.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { block(layout, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { block(layout, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller gives back a block this allocator returned (GlobalAlloc's contract).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (GlobalAlloc's contract); the
        // new block must keep `layout.align()`, under the same rule as in `alloc`.
        unsafe {
            if plain_is_enough(layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills `len` bytes at `p` with a pattern.
    ///
    /// SAFETY: `p` must be valid for `len` bytes.
    #[allow(unsafe_code)]
    unsafe fn fill(p: *mut u8, len: usize) {
        for i in 0..len {
            // SAFETY: in bounds, by the caller.
            unsafe { p.add(i).write(i as u8) };
        }
    }

    /// Whether the first `len` bytes at `p` hold the pattern of [`fill`].
    ///
    /// SAFETY: `p` must be valid for `len` bytes.
    #[allow(unsafe_code)]
    unsafe fn holds_pattern(p: *const u8, len: usize) -> bool {
        // SAFETY: in bounds, by the caller.
        (0..len).all(|i| unsafe { p.add(i).read() } == i as u8)
    }

    /// Every block is as aligned as its layout asks, holds what was written to it, and keeps it
    /// through a `realloc` that grows or shrinks it; zeroed blocks are zero. Sizes around word
    /// and size-class boundaries, alignments from 1 to a page.
    #[test]
    #[allow(unsafe_code)]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let sizes = [1usize, 3, 7, 8, 9, 15, 16, 17, 24, 40, 48, 100, 1000, 1024, 1100, 5000, 70_000, 300_000];
        let aligns = [1usize, 2, 4, 8, 16, 32, 64, 4096];
        for &size in &sizes {
            for &align in &aligns {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: non-zero sizes; each block is used within its size and freed once,
                // with the layout it has at that moment.
                unsafe {
                    let p = Allocator.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "alloc of {size} aligned {align}");
                    fill(p, size);
                    let new_size = size * 3;
                    let q = Allocator.realloc(p, layout, new_size);
                    assert_eq!(q as usize % align, 0, "realloc {size} -> {new_size} aligned {align}");
                    assert!(holds_pattern(q, size));
                    let grown = Layout::from_size_align(new_size, align).expect("layout");
                    let r = Allocator.realloc(q, grown, size / 2 + 1);
                    assert_eq!(r as usize % align, 0, "realloc {new_size} -> {} aligned {align}", size / 2 + 1);
                    assert!(holds_pattern(r, size / 2 + 1));
                    Allocator.dealloc(r, Layout::from_size_align(size / 2 + 1, align).expect("layout"));

                    let z = Allocator.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "alloc_zeroed of {size} aligned {align}");
                    assert!((0..size).all(|i| z.add(i).read() == 0));
                    Allocator.dealloc(z, layout);
                }
            }
        }
    }
}
