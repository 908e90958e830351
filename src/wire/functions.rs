//! A Python function's bytes travel once per frame: the first try of a frame that calls it
//! carries them, and the frame's later tries of the same function name it by key alone. A
//! thousand tries of one function in a batch cross the network with one copy of it, not a
//! thousand, and decode sharing one copy in memory (the interchange holds queued tries so).
//!
//! The scope is one frame: [`encoding`] and [`decoding`] wrap the encode and the decode of one
//! message. Outside a scope (sizes counted for batching, files) every function is written
//! whole, so a count is never below the frame it predicts.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A function's key: the first 16 bytes of the BLAKE3 hash of its pickled bytes.
pub type FunctionKey = [u8; 16];

thread_local! {
    /// Keys whose bytes the frame being encoded already carries.
    static WRITTEN: RefCell<Option<HashSet<FunctionKey>>> = const { RefCell::new(None) };
    /// Bytes the frame being decoded has carried so far, by key.
    static READ: RefCell<Option<HashMap<FunctionKey, Arc<Vec<u8>>>>> = const { RefCell::new(None) };
}

/// Ends a scope when dropped, also on a panic, restoring the scope around it.
struct Restore<T: 'static> {
    cell: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    outer: Option<T>,
}

impl<T: 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        let outer = self.outer.take();
        self.cell.with(|c| *c.borrow_mut() = outer);
    }
}

fn scoped<T: Default + 'static, R>(
    cell: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    f: impl FnOnce() -> R,
) -> R {
    let outer = cell.with(|c| c.borrow_mut().replace(T::default()));
    let _restore = Restore { cell, outer };
    f()
}

/// Run `f`, the encoding of one frame, writing each Python function's bytes once in it.
pub fn encoding<R>(f: impl FnOnce() -> R) -> R {
    scoped(&WRITTEN, f)
}

/// Run `f`, the decoding of one frame, resolving functions named by key within it.
pub fn decoding<R>(f: impl FnOnce() -> R) -> R {
    scoped(&READ, f)
}

/// Whether the function `key` must be written whole here: outside a frame always, in one only
/// the first time.
pub(crate) fn write_whole(key: &FunctionKey) -> bool {
    WRITTEN.with(|c| c.borrow_mut().as_mut().is_none_or(|w| w.insert(*key)))
}

/// The bytes `key` arrived with, shared with the frame's later tries of it.
pub(crate) fn read_whole(key: &FunctionKey, bytes: Vec<u8>) -> Arc<Vec<u8>> {
    READ.with(|c| match c.borrow_mut().as_mut() {
        Some(read) => Arc::clone(read.entry(*key).or_insert_with(|| Arc::new(bytes))),
        None => Arc::new(bytes),
    })
}

/// The bytes of a function named by `key` alone: those of an earlier try in this frame.
pub(crate) fn read_by_key(key: &FunctionKey) -> Option<Arc<Vec<u8>>> {
    READ.with(|c| c.borrow().as_ref().and_then(|read| read.get(key).cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a frame a key is written whole once; outside one always; scopes nest and end.
    #[test]
    fn once_per_frame() {
        let k = [7u8; 16];
        assert!(write_whole(&k) && write_whole(&k), "outside a frame: always whole");
        encoding(|| {
            assert!(write_whole(&k));
            assert!(!write_whole(&k), "the second time by key");
            encoding(|| assert!(write_whole(&k), "a nested frame is its own"));
            assert!(!write_whole(&k), "the outer frame's scope is back");
        });
        assert!(write_whole(&k), "the scope ended");
        decoding(|| {
            assert_eq!(read_by_key(&k), None, "not carried yet");
            let a = read_whole(&k, b"f".to_vec());
            let b = read_by_key(&k).expect("carried");
            assert!(Arc::ptr_eq(&a, &b), "one copy shared");
        });
        assert_eq!(read_by_key(&k), None, "the scope ended");
    }
}
