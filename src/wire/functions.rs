//! A Python function's bytes travel once per frame, and once per link where the link keeps
//! them: the first try of a frame that calls it carries them, and the frame's later tries of
//! the same function name it by key alone. A thousand tries of one function in a batch cross
//! the network with one copy of it, not a thousand, and decode sharing one copy in memory (the
//! interchange holds queued tries so).
//!
//! The scope is one frame: [`encoding`] and [`decoding`] wrap the encode and the decode of one
//! message. Outside a scope (sizes counted for batching, files) every function is written
//! whole, so a count is never below the frame it predicts.
//!
//! A link (interchange to one manager, manager to one worker) may also keep functions across
//! frames: [`encoding_over`] writes through the sender's [`Sent`] and [`decoding_over`] reads
//! through the receiver's [`Held`]. The sender decides: a function written whole is marked
//! "keep" while the link's kept bytes stay under [`LINK_KEEP_BYTES`], and later frames name it
//! by key. The receiver keeps exactly what it is told to. Should the two ever disagree (a frame
//! lost on the way, a receiver that restarted), the receiver gets a try naming a function it
//! does not hold; [`decoding_over`] reports it instead of failing the frame, the receiver hands
//! such tries back, and [`Sent::not_held`] makes the next frame carry the function whole.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A function's key: the first 16 bytes of the BLAKE3 hash of its pickled bytes.
pub type FunctionKey = [u8; 16];

/// A key as hex, for messages.
pub fn hex(key: &FunctionKey) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Most bytes of functions one link's receiver is told to keep, unless the link says less
/// ([`Sent::with_room`]). Past it, further functions travel whole in every frame: the bound is
/// on the receiver's memory, per link.
pub const LINK_KEEP_BYTES: usize = 64 << 20;

/// The sending end of one link: the functions its receiver was told to keep.
#[derive(Debug)]
pub struct Sent {
    /// Most bytes of functions the receiver is told to keep.
    room: usize,
    /// What the receiver was told to keep, with the bytes to put back into a try it hands
    /// back for not holding its function.
    told: HashMap<FunctionKey, Arc<Vec<u8>>>,
    /// Sum of `told`'s sizes.
    bytes: usize,
    /// Told, but the receiver said it does not hold them: written whole (and kept) next time.
    stale: HashSet<FunctionKey>,
}

impl Default for Sent {
    fn default() -> Sent {
        Sent::with_room(LINK_KEEP_BYTES)
    }
}

impl Sent {
    /// A link whose receiver keeps at most `room` bytes of functions (a worker rank's link
    /// keeps less than a manager's: a node may run a hundred of them).
    pub fn with_room(room: usize) -> Sent {
        Sent { room, told: HashMap::new(), bytes: 0, stale: HashSet::new() }
    }

    /// The bytes of a function this link's receiver was told to keep.
    pub fn function(&self, key: &FunctionKey) -> Option<Arc<Vec<u8>>> {
        self.told.get(key).cloned()
    }

    /// The receiver does not hold `key`: the next frame that calls it carries it whole.
    pub fn not_held(&mut self, key: &FunctionKey) {
        if self.told.contains_key(key) {
            self.stale.insert(*key);
        }
    }

    /// Functions the receiver was told to keep.
    pub fn len(&self) -> usize {
        self.told.len()
    }

    /// Whether the receiver was told to keep nothing.
    pub fn is_empty(&self) -> bool {
        self.told.is_empty()
    }

    /// How a function goes in a frame of this link that has not carried it yet.
    fn write(&mut self, key: &FunctionKey, pickled: &Arc<Vec<u8>>) -> Write {
        if self.told.contains_key(key) {
            return if self.stale.remove(key) { Write::Whole { keep: true } } else { Write::ByKey };
        }
        if self.bytes + pickled.len() > self.room {
            return Write::Whole { keep: false };
        }
        self.bytes += pickled.len();
        self.told.insert(*key, Arc::clone(pickled));
        Write::Whole { keep: true }
    }
}

/// The receiving end of one link: the functions it was told to keep.
#[derive(Debug, Default)]
pub struct Held {
    kept: HashMap<FunctionKey, Arc<Vec<u8>>>,
}

impl Held {
    /// Forget everything (the sender's end was reset: it re-registered us).
    pub fn clear(&mut self) {
        self.kept.clear();
    }

    /// Functions kept.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

/// One copy of each function in a process that receives the same function from many frames
/// (the interchange, from its clients): every link that keeps it then shares that copy, so
/// ten thousand managers keeping a 10 MB function cost 10 MB, not 100 GB.
#[derive(Debug, Default)]
pub struct Interned {
    copies: HashMap<FunctionKey, std::sync::Weak<Vec<u8>>>,
}

impl Interned {
    /// Make `bytes` the one copy of function `key` (the first one seen while any is alive).
    pub fn share(&mut self, key: &FunctionKey, bytes: &mut Arc<Vec<u8>>) {
        let slot = self.copies.entry(*key).or_default();
        match slot.upgrade() {
            Some(one) => *bytes = one,
            None => *slot = Arc::downgrade(bytes),
        }
    }

    /// Forget the functions nothing holds any more.
    pub fn prune(&mut self) {
        self.copies.retain(|_, w| w.strong_count() > 0);
    }

    /// Functions known (alive or not yet pruned).
    pub fn len(&self) -> usize {
        self.copies.len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.copies.is_empty()
    }
}

/// How one function is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// Its bytes, and whether the receiver keeps them for later frames of the link.
    Whole {
        /// Keep them.
        keep: bool,
    },
    /// Its key alone: the frame or the link already carried it.
    ByKey,
}

/// The scope of one frame being encoded.
#[derive(Default)]
struct Encoding {
    /// Keys whose bytes (or key) the frame already carries.
    written: HashSet<FunctionKey>,
    /// The link's sending end, when the frame goes over one.
    link: Option<Sent>,
}

/// The scope of one frame being decoded.
#[derive(Default)]
struct Decoding {
    /// Bytes the frame has carried so far, by key.
    read: HashMap<FunctionKey, Arc<Vec<u8>>>,
    /// The link's receiving end, when the frame came over one.
    link: Option<Held>,
    /// Keys named that neither the frame nor the link holds (only over a link).
    missing: Vec<FunctionKey>,
}

thread_local! {
    static ENCODING: RefCell<Option<Encoding>> = const { RefCell::new(None) };
    static DECODING: RefCell<Option<Decoding>> = const { RefCell::new(None) };
}

/// Ends a scope when dropped, also on a panic, restoring the scope around it and handing the
/// ended one to `done` (where a link's end is taken back).
struct Restore<T: 'static> {
    cell: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    outer: Option<Option<T>>,
}

impl<T: 'static> Restore<T> {
    fn finish(mut self) -> Option<T> {
        let outer = self.outer.take().flatten();
        self.cell.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer))
    }
}

impl<T: 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        if let Some(outer) = self.outer.take() {
            self.cell.with(|c| *c.borrow_mut() = outer);
        }
    }
}

fn scoped<T: 'static, R>(
    cell: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    scope: T,
    f: impl FnOnce() -> R,
) -> (R, Option<T>) {
    let outer = cell.with(|c| c.borrow_mut().replace(scope));
    let restore = Restore { cell, outer: Some(outer) };
    let r = f();
    (r, restore.finish())
}

/// Run `f`, the encoding of one frame, writing each Python function's bytes once in it.
pub fn encoding<R>(f: impl FnOnce() -> R) -> R {
    scoped(&ENCODING, Encoding::default(), f).0
}

/// Run `f`, the decoding of one frame, resolving functions named by key within it.
pub fn decoding<R>(f: impl FnOnce() -> R) -> R {
    scoped(&DECODING, Decoding::default(), f).0
}

/// Run `f`, the encoding of one frame over the link whose sending end is `link`: functions
/// its receiver keeps are named by key, and new ones are told to be kept while there is room.
/// (Should `f` panic, `link` is left empty: the receiver is then sent every function whole.)
pub fn encoding_over<R>(link: &mut Sent, f: impl FnOnce() -> R) -> R {
    let empty = Sent::with_room(link.room);
    let scope = Encoding { written: HashSet::new(), link: Some(std::mem::replace(link, empty)) };
    let (r, scope) = scoped(&ENCODING, scope, f);
    if let Some(back) = scope.and_then(|s| s.link) {
        *link = back;
    }
    r
}

/// Run `f`, the decoding of one frame over the link whose receiving end is `link`. Returns
/// `f`'s result and the keys of functions named that `link` does not hold: the tries that call
/// them decoded with empty bytes and must be handed back, not run.
pub fn decoding_over<R>(link: &mut Held, f: impl FnOnce() -> R) -> (R, Vec<FunctionKey>) {
    let scope = Decoding { read: HashMap::new(), link: Some(std::mem::take(link)), missing: vec![] };
    let (r, scope) = scoped(&DECODING, scope, f);
    let Some(Decoding { link: back, mut missing, .. }) = scope else { return (r, vec![]) };
    if let Some(back) = back {
        *link = back;
    }
    missing.sort_unstable();
    missing.dedup();
    (r, missing)
}

/// How the function `key` is written here: outside a frame always whole, in one whole the
/// first time (unless its link keeps it), then by key.
pub(crate) fn write(key: &FunctionKey, pickled: &Arc<Vec<u8>>) -> Write {
    ENCODING.with(|c| {
        let mut c = c.borrow_mut();
        let Some(scope) = c.as_mut() else { return Write::Whole { keep: false } };
        if !scope.written.insert(*key) {
            return Write::ByKey;
        }
        match scope.link.as_mut() {
            Some(link) => link.write(key, pickled),
            None => Write::Whole { keep: false },
        }
    })
}

/// The bytes `key` arrived with, shared with the frame's later tries of it (and kept by the
/// link when `keep`).
pub(crate) fn read_whole(key: &FunctionKey, bytes: Vec<u8>, keep: bool) -> Arc<Vec<u8>> {
    DECODING.with(|c| match c.borrow_mut().as_mut() {
        Some(scope) => {
            let bytes = Arc::clone(scope.read.entry(*key).or_insert_with(|| Arc::new(bytes)));
            if let (true, Some(link)) = (keep, scope.link.as_mut()) {
                link.kept.insert(*key, Arc::clone(&bytes));
            }
            bytes
        }
        None => Arc::new(bytes),
    })
}

/// The bytes of a function named by `key` alone: those of an earlier try in this frame, or
/// those its link keeps. Over a link, a key held by neither is noted as missing and read as
/// empty bytes; elsewhere it is `None` (the frame is malformed).
pub(crate) fn read_by_key(key: &FunctionKey) -> Option<Arc<Vec<u8>>> {
    DECODING.with(|c| {
        let mut c = c.borrow_mut();
        let scope = c.as_mut()?;
        if let Some(b) = scope.read.get(key) {
            return Some(Arc::clone(b));
        }
        let link = scope.link.as_ref()?;
        let bytes = match link.kept.get(key) {
            Some(b) => Arc::clone(b),
            None => {
                scope.missing.push(*key);
                Arc::new(Vec::new())
            }
        };
        scope.read.insert(*key, Arc::clone(&bytes));
        Some(bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHOLE: Write = Write::Whole { keep: false };
    const KEPT: Write = Write::Whole { keep: true };

    /// In a frame a key is written whole once; outside one always; scopes nest and end.
    #[test]
    fn once_per_frame() {
        let (k, f) = ([7u8; 16], Arc::new(b"f".to_vec()));
        assert_eq!((write(&k, &f), write(&k, &f)), (WHOLE, WHOLE), "outside a frame: always whole");
        encoding(|| {
            assert_eq!(write(&k, &f), WHOLE);
            assert_eq!(write(&k, &f), Write::ByKey, "the second time by key");
            encoding(|| assert_eq!(write(&k, &f), WHOLE, "a nested frame is its own"));
            assert_eq!(write(&k, &f), Write::ByKey, "the outer frame's scope is back");
        });
        assert_eq!(write(&k, &f), WHOLE, "the scope ended");
        decoding(|| {
            assert_eq!(read_by_key(&k), None, "not carried yet");
            let a = read_whole(&k, b"f".to_vec(), false);
            let b = read_by_key(&k).expect("carried");
            assert!(Arc::ptr_eq(&a, &b), "one copy shared");
        });
        assert_eq!(read_by_key(&k), None, "the scope ended");
    }

    /// Over a link a function is kept after its first frame and named by key in the next;
    /// the receiver resolves it from what it keeps.
    #[test]
    fn a_link_keeps_what_it_is_told_to() {
        let (k, f) = ([1u8; 16], Arc::new(vec![5u8; 1000]));
        let (mut sent, mut held) = (Sent::default(), Held::default());
        assert_eq!(encoding_over(&mut sent, || (write(&k, &f), write(&k, &f))), (KEPT, Write::ByKey));
        let (bytes, missing) = decoding_over(&mut held, || read_whole(&k, f.to_vec(), true));
        assert_eq!((bytes.len(), missing.len(), held.len()), (1000, 0, 1));
        assert_eq!(encoding_over(&mut sent, || write(&k, &f)), Write::ByKey, "the next frame names it");
        let (bytes, missing) = decoding_over(&mut held, || read_by_key(&k));
        assert_eq!((bytes.map(|b| b.len()), missing.len()), (Some(1000), 0));
        assert!(Arc::ptr_eq(&sent.function(&k).expect("told"), &f), "the sender keeps its bytes to put back");
        // A frame over no link is untouched by either end.
        assert_eq!(encoding(|| write(&k, &f)), WHOLE);
    }

    /// A receiver that does not hold a function named by key reports it, reads empty bytes,
    /// and keeps its other functions; the sender then writes it whole (kept) once more.
    #[test]
    fn a_function_not_held_is_reported_and_sent_whole_again() {
        let (k, f) = ([2u8; 16], Arc::new(vec![6u8; 10]));
        let mut sent = Sent::default();
        encoding_over(&mut sent, || write(&k, &f));
        let mut fresh = Held::default();
        let (bytes, missing) = decoding_over(&mut fresh, || (read_by_key(&k), read_by_key(&k)));
        assert_eq!(bytes, (Some(Arc::new(vec![])), Some(Arc::new(vec![]))));
        assert_eq!(missing, vec![k], "reported once");
        sent.not_held(&k);
        assert_eq!(encoding_over(&mut sent, || write(&k, &f)), KEPT, "whole again, and kept");
        assert_eq!(encoding_over(&mut sent, || write(&k, &f)), Write::ByKey);
        sent.not_held(&[9u8; 16]);
        assert_eq!(sent.len(), 1, "a key never told is not made up");
    }

    /// Copies of one function from different frames become one; a copy nothing holds is let go.
    #[test]
    fn interned_copies_are_one() {
        let k = [4u8; 16];
        let mut table = Interned::default();
        let (mut a, mut b) = (Arc::new(vec![1u8; 10]), Arc::new(vec![1u8; 10]));
        table.share(&k, &mut a);
        table.share(&k, &mut b);
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        table.prune();
        assert!(table.is_empty());
        let mut c = Arc::new(vec![2u8; 10]);
        table.share(&k, &mut c);
        assert_eq!((table.len(), c[0]), (1, 2), "a new copy after the old one went");
    }

    /// Past the link's room a function travels whole every time and is not kept.
    #[test]
    fn a_link_keeps_at_most_its_room() {
        let big = Arc::new(vec![0u8; LINK_KEEP_BYTES - 10]);
        let small = Arc::new(vec![0u8; 20]);
        let mut sent = Sent::default();
        assert_eq!(encoding_over(&mut sent, || write(&[1; 16], &big)), KEPT);
        for _ in 0..2 {
            assert_eq!(encoding_over(&mut sent, || write(&[2; 16], &small)), WHOLE, "no room left");
        }
        assert_eq!(encoding_over(&mut sent, || write(&[3; 16], &Arc::new(vec![0u8; 10]))), KEPT, "exactly fits");
        assert_eq!(sent.len(), 2);
        let mut small_room = Sent::with_room(15);
        assert_eq!(encoding_over(&mut small_room, || write(&[2; 16], &small)), WHOLE, "past its own room");
        assert_eq!(encoding_over(&mut small_room, || write(&[3; 16], &Arc::new(vec![0u8; 10]))), KEPT);
    }
}
