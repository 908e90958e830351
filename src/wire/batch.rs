//! Batches that fit in a frame: every sender splits what it batches by encoded size, not by
//! count, so a round of large results can never make a frame the receiver must refuse.

use super::{bincode_config, Codec, HEADER_LEN, MAC_LEN};
use serde::Serialize;

/// Bytes of a batch frame outside its items: header, MAC, the message's variant tag and the
/// vector's length (both varints, at most 5 and 9 bytes), rounded up.
pub const BATCH_OVERHEAD: usize = HEADER_LEN + MAC_LEN + 16;

/// The encoded size of `v` in bytes, counted without building the encoding.
pub fn encoded_len<T: Serialize>(v: &T) -> usize {
    let mut size = bincode::enc::write::SizeWriter::default();
    // Counting cannot fail for our own plain-data messages, as encoding cannot.
    let _ = bincode::serde::encode_into_writer(v, &mut size, bincode_config());
    size.bytes_written
}

/// An item that alone exceeds the budget of a batch frame.
#[derive(Debug)]
pub struct TooLarge<T> {
    /// The item, for the sender to fail or report.
    pub item: T,
    /// Its encoded size in bytes.
    pub bytes: usize,
}

/// Batches in order whose items each encode within `budget` bytes in all, and the items that
/// alone exceed it.
pub fn split_by_size<T: Serialize>(items: Vec<T>, budget: usize) -> (Vec<Vec<T>>, Vec<TooLarge<T>>) {
    let mut batches = Vec::new();
    let mut too_large = Vec::new();
    let mut current = Vec::new();
    let mut used = 0usize;
    for item in items {
        let bytes = encoded_len(&item);
        if bytes > budget {
            too_large.push(TooLarge { item, bytes });
            continue;
        }
        if used + bytes > budget && !current.is_empty() {
            batches.push(std::mem::take(&mut current));
            used = 0;
        }
        used += bytes;
        current.push(item);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    (batches, too_large)
}

impl Codec {
    /// Bytes the items of one batch message may take so that its frame stays within the limit.
    pub fn batch_budget(&self) -> usize {
        self.max_frame.saturating_sub(BATCH_OVERHEAD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{ClientId, Outcome, TaskId, TryId, TryResult};
    use crate::wire::{Key, ToClientMsg};

    fn result(task: u64, bytes: usize) -> TryResult {
        let id = TryId { client: ClientId(7), task: TaskId(task), attempt: 0 };
        TryResult::new(id, Outcome::Done(vec![b'x'; bytes]))
    }

    #[test]
    fn batches_keep_order_and_every_frame_fits() {
        let codec = Codec::new(Key([3; 32]), 1).with_max_frame(10_000);
        let items: Vec<TryResult> = (0..100).map(|i| result(i, 300 + (i as usize * 37) % 900)).collect();
        let (batches, too_large) = split_by_size(items.clone(), codec.batch_budget());
        assert!(too_large.is_empty());
        assert!(batches.len() > 1, "100 items of ~750 bytes must not fit one 10 kB frame");
        for b in &batches {
            let frame = codec.encode(&ToClientMsg::Results(b.clone()), 1);
            assert!(frame.len() <= codec.max_frame(), "frame of {} bytes over {}", frame.len(), codec.max_frame());
            codec.decode::<ToClientMsg>(&frame).expect("each batch decodes");
        }
        assert_eq!(batches.concat(), items, "split keeps every item, in order");
    }

    #[test]
    fn an_item_over_the_budget_comes_back_apart() {
        let codec = Codec::new(Key([3; 32]), 1).with_max_frame(4_096);
        let items = vec![result(1, 10), result(2, 5_000), result(3, 10)];
        let (batches, too_large) = split_by_size(items, codec.batch_budget());
        assert_eq!(batches.concat().iter().map(|r| r.id.task.0).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(too_large.len(), 1);
        assert_eq!(too_large[0].item.id.task.0, 2);
        assert!(too_large[0].bytes > 5_000);
    }

    #[test]
    fn encoded_len_is_the_encoding_length() {
        let r = result(9, 1234);
        let mut v = Vec::new();
        bincode::serde::encode_into_std_write(&r, &mut v, bincode_config()).expect("encodes");
        assert_eq!(encoded_len(&r), v.len());
    }
}
