//! Zeroed buffers aligned to 2 MB and advised for transparent huge pages: the weights and the
//! activation arena a network streams through on every run then miss the TLB once per 2 MB
//! rather than once per 4 KB page (what the generated libraries do too, see `runtime.rs`).

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A huge page's size and the buffers' alignment.
const HUGE: usize = 2 << 20;

/// Element types whose all-zero bytes are a valid value.
pub(crate) trait Zeroable: Copy {}
impl Zeroable for f32 {}
impl Zeroable for u64 {}

/// A fixed-length zero-initialized slice in huge-page-backed memory.
pub(crate) struct HugeBuffer<T: Zeroable> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
}

// SAFETY: the buffer owns its memory, as a `Vec<T>` does.
unsafe impl<T: Zeroable + Send> Send for HugeBuffer<T> {}
// SAFETY: shared references only read it.
unsafe impl<T: Zeroable + Sync> Sync for HugeBuffer<T> {}

impl<T: Zeroable> HugeBuffer<T> {
    /// `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        let bytes = (len.max(1) * size_of::<T>()).next_multiple_of(HUGE);
        let layout = Layout::from_size_align(bytes, HUGE).expect("a buffer smaller than isize::MAX");
        // SAFETY: the layout's size is nonzero.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else { handle_alloc_error(layout) };
        // Advised before the first write, which is when the pages are made. A hint only: where
        // the kernel has no transparent huge pages, 4 KB pages serve.
        #[cfg(target_os = "linux")]
        // SAFETY: the range is the allocation just made.
        unsafe {
            libc::madvise(raw.cast(), bytes, libc::MADV_HUGEPAGE);
        }
        // SAFETY: `bytes` bytes were allocated.
        unsafe { raw.write_bytes(0, bytes) };
        HugeBuffer { ptr, len, layout }
    }

    /// A copy of `data`.
    pub fn from_slice(data: &[T]) -> Self {
        let mut buffer = HugeBuffer::zeroed(data.len());
        buffer.copy_from_slice(data);
        buffer
    }
}

impl<T: Zeroable> Deref for HugeBuffer<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialized elements (zeroed, then written only through `deref_mut`).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> DerefMut for HugeBuffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` is the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> Drop for HugeBuffer<T> {
    fn drop(&mut self) {
        // SAFETY: allocated by `zeroed` with this layout.
        unsafe { dealloc(self.ptr.as_ptr().cast(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_a_copy_and_is_aligned_to_a_huge_page() {
        let data: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let mut buffer = HugeBuffer::from_slice(&data);
        assert_eq!(&buffer[..], &data[..]);
        assert_eq!(buffer.as_ptr() as usize % HUGE, 0);
        buffer[3] = -1.0;
        assert_eq!(buffer[3], -1.0);
        let empty = HugeBuffer::<u64>::zeroed(0);
        assert!(empty.is_empty());
        assert!(HugeBuffer::<u64>::zeroed(5).iter().all(|&x| x == 0));
    }
}
