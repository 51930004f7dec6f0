//! A connection's output: a queue of byte chunks, most of them frames shared by every subscriber
//! of a message (`Rc<[u8]>`), each with how much of it has been sent. Flushing fills iovecs from
//! the front; the slow-subscriber policy drops whole unsent frames from the front, and leaves
//! a small notice of its own where they were, so the next frame the client reads is told.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::rc::Rc;

/// Slices handed to one `writev`: enough to empty a backlog in one call, few enough to build on
/// the stack (Linux's IOV_MAX is 1024).
pub const IOVECS_PER_WRITE: usize = 128;
/// Slices of the small gather used when few chunks are queued, the usual case of one message at
/// a time: filling all `IOVECS_PER_WRITE` empty slices first cost more than the rest of a flush.
const FEW_IOVECS: usize = 4;
/// Queue slots an idle connection keeps (40 bytes each).
const KEPT_CHUNKS: usize = 4;

#[derive(Debug)]
enum Bytes {
    /// A message frame, encoded once and shared; may be dropped while wholly unsent.
    Frame(Rc<[u8]>),
    /// This connection's own bytes: a response head, a file chunk; never dropped.
    Own(Vec<u8>),
    /// A shared frame inside a response of known length (a long-poll answer); never dropped.
    Pinned(Rc<[u8]>),
    /// This connection's note that `count` frames were dropped just before this point, encoded
    /// so that it becomes part of the frame after it (a multipart part header). While wholly
    /// unsent it absorbs later drops at the same point, so notices never stack. Boxed: it is
    /// rare, and a queue slot stays 40 bytes.
    Notice(Box<Notice>),
    /// A few bytes of the connection's own kept in place, no allocation: an HTTP/2 DATA
    /// frame's header in front of a shared frame. Never dropped.
    Inline { len: u8, bytes: [u8; INLINE_BYTES] },
}

#[derive(Debug)]
struct Notice {
    count: u32,
    bytes: Vec<u8>,
}

/// Bytes an `Inline` chunk holds: as many as keep a queue slot at 40 bytes (the test below).
const INLINE_BYTES: usize = 15;

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Frame(frame) | Bytes::Pinned(frame) => frame,
            Bytes::Own(bytes) => bytes,
            Bytes::Notice(notice) => &notice.bytes,
            Bytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
        }
    }
}

/// Encodes the notice that `count` messages were dropped, for the transport of the queue.
pub type NoticeEncoder<'a> = &'a dyn Fn(u32) -> Vec<u8>;

#[derive(Debug)]
struct Chunk {
    bytes: Bytes,
    sent: usize,
    /// For a message's frame, when the message was made (the reactor's clock, never 0), so
    /// its publish-to-written latency is observed once the last byte is out; 0 for the rest.
    stamp: u64,
}

impl Chunk {
    fn unsent(&self) -> &[u8] {
        &self.bytes.as_slice()[self.sent..]
    }
}

/// How a flush ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued went out.
    Drained,
    /// The socket would block: wait for it to become writable.
    Blocked,
    /// The per-turn byte cap was reached with the socket still writable: go on next turn.
    Capped,
}

/// The front of a queue as another queue takes it on: an HTTP/2 stream's bytes going into its
/// connection's queue as DATA payloads.
#[derive(Debug)]
pub enum Front {
    /// A whole, wholly unsent shared frame: queued on as it is, never copied.
    Shared(Rc<[u8]>),
    /// Own bytes, or the part of a frame that fits: moved when whole, else copied.
    Bytes(Vec<u8>),
}

#[derive(Debug, Default)]
pub struct OutQueue {
    chunks: VecDeque<Chunk>,
    /// Unsent bytes in the queue.
    queued: usize,
}

impl OutQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    pub fn push_frame(&mut self, frame: Rc<[u8]>) {
        self.queued += frame.len();
        self.chunks.push_back(Chunk {
            bytes: Bytes::Frame(frame),
            sent: 0,
            stamp: 0,
        });
    }

    /// Queues a shared frame that must not be dropped: part of a response with a length.
    pub fn push_pinned(&mut self, frame: Rc<[u8]>) {
        self.queued += frame.len();
        self.chunks.push_back(Chunk {
            bytes: Bytes::Pinned(frame),
            sent: 0,
            stamp: 0,
        });
    }

    /// Queues a few bytes of the connection's own without allocating (at most 15; longer
    /// ones go as `push_own` would take them).
    pub fn push_small(&mut self, small: &[u8]) {
        if small.is_empty() {
            return;
        }
        if small.len() > INLINE_BYTES {
            return self.push_own(small.to_vec());
        }
        let mut bytes = [0; INLINE_BYTES];
        bytes[..small.len()].copy_from_slice(small);
        self.queued += small.len();
        self.chunks.push_back(Chunk {
            bytes: Bytes::Inline {
                len: small.len() as u8,
                bytes,
            },
            sent: 0,
            stamp: 0,
        });
    }

    pub fn push_own(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        self.queued += bytes.len();
        self.chunks.push_back(Chunk {
            bytes: Bytes::Own(bytes),
            sent: 0,
            stamp: 0,
        });
    }

    /// Takes up to `max` bytes from the front (None if empty or `max` is 0). A shared frame
    /// that fits whole is handed on by reference, so encode-once holds across the hand-over.
    pub fn take_front(&mut self, max: usize) -> Option<Front> {
        let chunk = self.chunks.front_mut()?;
        let unsent = chunk.unsent().len();
        if max == 0 {
            return None;
        }
        if chunk.sent == 0 && unsent <= max {
            self.queued -= unsent;
            let chunk = self.chunks.pop_front()?;
            return Some(match chunk.bytes {
                Bytes::Frame(f) | Bytes::Pinned(f) => Front::Shared(f),
                Bytes::Own(bytes) => Front::Bytes(bytes),
                Bytes::Notice(notice) => Front::Bytes(notice.bytes),
                Bytes::Inline { len, bytes } => Front::Bytes(bytes[..usize::from(len)].to_vec()),
            });
        }
        let n = unsent.min(max);
        let piece = chunk.unsent()[..n].to_vec();
        chunk.sent += n;
        self.queued -= n;
        if n == unsent {
            self.chunks.pop_front();
        }
        Some(Front::Bytes(piece))
    }

    /// Stamps the chunk just queued for `frame` (the last one; in a long-poll answer, the one
    /// before its closing bytes), so that `flush_observed` reports it when written. A frame not
    /// found there (dropped, or wrapped by a door in bytes of its own) goes unobserved. Two
    /// looks at most: this runs once per delivery.
    pub fn stamp_frame(&mut self, frame: *const [u8], stamp: u64) {
        let len = self.chunks.len();
        for at in [len.wrapping_sub(1), len.wrapping_sub(2)] {
            let Some(chunk) = self.chunks.get_mut(at) else {
                return;
            };
            if let Bytes::Frame(f) | Bytes::Pinned(f) = &chunk.bytes {
                if std::ptr::eq(Rc::as_ptr(f), frame) {
                    if chunk.stamp == 0 {
                        chunk.stamp = stamp;
                    }
                    return;
                }
            }
        }
    }

    /// Drops wholly unsent frames, oldest first, until `incoming` more bytes fit under `limit`
    /// or no droppable frame is left. Returns how many frames were dropped. With `notice`, each
    /// gap gets one notice chunk where the dropped frames were, so the frame after them carries
    /// it; a frame right behind a notice already in flight is kept, as that notice is its own.
    pub fn drop_oldest_frames(
        &mut self,
        incoming: usize,
        limit: usize,
        notice: Option<NoticeEncoder<'_>>,
    ) -> usize {
        let mut dropped = 0;
        let mut i = 0;
        while self.queued + incoming > limit && i < self.chunks.len() {
            let chunk = &self.chunks[i];
            let behind_sent_notice = i > 0
                && matches!(self.chunks[i - 1], Chunk { bytes: Bytes::Notice(..), sent, .. } if sent > 0);
            if chunk.sent == 0 && matches!(chunk.bytes, Bytes::Frame(_)) && !behind_sent_notice {
                self.queued -= chunk.bytes.as_slice().len();
                self.chunks.remove(i);
                dropped += 1;
                if let Some(encode) = notice {
                    if self.note_dropped_at(i, 1, encode) {
                        i += 1;
                    }
                }
            } else {
                i += 1;
            }
        }
        dropped
    }

    /// Notes that `count` frames were dropped after everything queued (the incoming one, when
    /// nothing older could go): the next frame queued carries the notice.
    pub fn note_dropped(&mut self, count: u32, notice: NoticeEncoder<'_>) {
        self.note_dropped_at(self.chunks.len(), count, notice);
    }

    /// Adds `count` to the unsent notice just before `at`, or inserts one there. Returns
    /// whether a chunk was inserted.
    fn note_dropped_at(&mut self, at: usize, count: u32, encode: NoticeEncoder<'_>) -> bool {
        if let Some(Chunk {
            bytes: Bytes::Notice(notice),
            sent: 0,
            ..
        }) = at
            .checked_sub(1)
            .and_then(|before| self.chunks.get_mut(before))
        {
            notice.count = notice.count.saturating_add(count);
            let encoded = encode(notice.count);
            self.queued = self.queued - notice.bytes.len() + encoded.len();
            notice.bytes = encoded;
            return false;
        }
        let bytes = encode(count);
        self.queued += bytes.len();
        self.chunks.insert(
            at,
            Chunk {
                bytes: Bytes::Notice(Box::new(Notice { count, bytes })),
                sent: 0,
                stamp: 0,
            },
        );
        true
    }

    /// Writes from the front with vectored writes until drained, blocked, or `cap` bytes went
    /// out in this call. `write` is one `writev`; it returns bytes written.
    pub fn flush<W>(&mut self, cap: usize, write: W) -> io::Result<(Flushed, usize)>
    where
        W: FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    {
        self.flush_observed(cap, write, |_| {})
    }

    /// `flush`, calling `written` with the stamp of each stamped chunk whose last byte went
    /// out (see `stamp_frame`).
    pub fn flush_observed<W, O>(
        &mut self,
        cap: usize,
        mut write: W,
        mut written: O,
    ) -> io::Result<(Flushed, usize)>
    where
        W: FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
        O: FnMut(u64),
    {
        let mut total = 0;
        while !self.chunks.is_empty() {
            if total >= cap {
                return Ok((Flushed::Capped, total));
            }
            let wrote = if self.chunks.len() <= FEW_IOVECS {
                self.gather_and_write::<FEW_IOVECS, W>(&mut write)
            } else {
                self.gather_and_write::<IOVECS_PER_WRITE, W>(&mut write)
            };
            match wrote {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n_written) => {
                    total += n_written;
                    self.advance(n_written, &mut written);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok((Flushed::Blocked, total))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((Flushed::Drained, total))
    }

    /// One `write` of up to `N` chunks from the front, gathered on the stack.
    fn gather_and_write<const N: usize, W>(&self, write: &mut W) -> io::Result<usize>
    where
        W: FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    {
        let mut iov = [IoSlice::new(&[]); N];
        let mut n = 0;
        for chunk in self.chunks.iter().take(N) {
            iov[n] = IoSlice::new(chunk.unsent());
            n += 1;
        }
        write(&iov[..n])
    }

    fn advance(&mut self, mut written: usize, observe: &mut impl FnMut(u64)) {
        self.queued -= written;
        while written > 0 {
            let front = self.chunks.front_mut().expect("wrote more than was queued");
            let left = front.bytes.as_slice().len() - front.sent;
            if written >= left {
                written -= left;
                if front.stamp != 0 {
                    observe(front.stamp);
                }
                self.chunks.pop_front();
            } else {
                front.sent += written;
                written = 0;
            }
        }
    }

    /// Releases a queue buffer grown by a backlog, so an idle subscriber holds little memory;
    /// a small one is kept, so that one message at a time costs no allocation per delivery.
    pub fn shrink_if_empty(&mut self) {
        if self.chunks.is_empty() && self.chunks.capacity() > KEPT_CHUNKS {
            self.chunks = VecDeque::with_capacity(KEPT_CHUNKS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Rc<[u8]> {
        Rc::from(s.as_bytes())
    }

    /// A socket stand-in: takes at most `per_call` bytes per writev and `total` in all, then
    /// would block.
    struct Sink {
        out: Vec<u8>,
        calls: usize,
        per_call: usize,
        total: usize,
    }

    impl Sink {
        fn new(per_call: usize, total: usize) -> Sink {
            Sink {
                out: Vec::new(),
                calls: 0,
                per_call,
                total,
            }
        }

        fn writev(&mut self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.out.len() >= self.total {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let room = self.per_call.min(self.total - self.out.len());
            let before = self.out.len();
            for slice in iov {
                let take = slice.len().min(room - (self.out.len() - before));
                self.out.extend_from_slice(&slice[..take]);
            }
            Ok(self.out.len() - before)
        }
    }

    #[test]
    fn one_writev_carries_every_queued_frame() {
        let mut q = OutQueue::new();
        q.push_own(b"head|".to_vec());
        for s in ["a", "bb", "ccc"] {
            q.push_frame(frame(s));
        }
        let mut sink = Sink::new(usize::MAX, usize::MAX);
        let r = q.flush(1 << 20, |iov| sink.writev(iov)).unwrap();
        assert_eq!(r, (Flushed::Drained, 11));
        assert_eq!(sink.out, b"head|abbccc");
        assert_eq!(sink.calls, 1);
        assert_eq!(q.queued_bytes(), 0);
    }

    #[test]
    fn a_backlog_past_the_small_gather_still_goes_in_one_writev() {
        let mut q = OutQueue::new();
        let frames: Vec<String> = (0..FEW_IOVECS * 3).map(|i| format!("<{i}>")).collect();
        for f in &frames {
            q.push_frame(frame(f));
        }
        let mut sink = Sink::new(usize::MAX, usize::MAX);
        let r = q.flush(1 << 20, |iov| sink.writev(iov)).unwrap();
        assert_eq!(r.0, Flushed::Drained);
        assert_eq!(sink.out, frames.concat().as_bytes());
        assert_eq!(sink.calls, 1);
    }

    #[test]
    fn a_stamped_frame_is_reported_once_its_last_byte_is_out() {
        let mut q = OutQueue::new();
        let (a, b) = (frame("hello"), frame("world"));
        q.push_frame(a.clone());
        q.stamp_frame(Rc::as_ptr(&a), 11);
        q.push_own(b"own".to_vec());
        q.push_pinned(b.clone());
        q.stamp_frame(Rc::as_ptr(&b), 22);
        q.stamp_frame(Rc::as_ptr(&b), 33); // stamped already: kept
        q.stamp_frame(Rc::as_ptr(&frame("elsewhere")), 44);
        let mut seen = Vec::new();
        let mut first = Sink::new(4, 7);
        let r = q.flush_observed(1 << 20, |iov| first.writev(iov), |s| seen.push(s));
        assert_eq!(
            (r.unwrap(), seen.as_slice()),
            ((Flushed::Blocked, 7), &[11][..])
        );
        let mut rest = Sink::new(100, 100);
        q.flush_observed(1 << 20, |iov| rest.writev(iov), |s| seen.push(s))
            .unwrap();
        assert_eq!(seen, [11, 22]);
    }

    #[test]
    fn partial_writes_resume_mid_frame() {
        let mut q = OutQueue::new();
        for s in ["hello", "world"] {
            q.push_frame(frame(s));
        }
        let mut first = Sink::new(3, 7);
        let r = q.flush(1 << 20, |iov| first.writev(iov)).unwrap();
        assert_eq!(r, (Flushed::Blocked, 7));
        assert_eq!(q.queued_bytes(), 3);
        let mut rest = Sink::new(100, 100);
        q.flush(1 << 20, |iov| rest.writev(iov)).unwrap();
        assert_eq!([first.out, rest.out].concat(), b"helloworld");
    }

    #[test]
    fn cap_stops_a_fat_subscriber() {
        let mut q = OutQueue::new();
        for _ in 0..10 {
            q.push_frame(frame("0123456789"));
        }
        let mut sink = Sink::new(10, usize::MAX);
        let r = q.flush(25, |iov| sink.writev(iov)).unwrap();
        assert_eq!(r, (Flushed::Capped, 30));
        assert_eq!(q.queued_bytes(), 70);
    }

    #[test]
    fn dropping_keeps_own_bytes_and_the_frame_in_flight() {
        let mut q = OutQueue::new();
        q.push_own(b"HEAD".to_vec());
        for s in ["m1", "m2", "m3", "m4"] {
            q.push_frame(frame(s));
        }
        // Send the head and one byte of m1: m1 is in flight and must not be dropped.
        let mut first = Sink::new(usize::MAX, 5);
        q.flush(1 << 20, |iov| first.writev(iov)).unwrap();
        assert_eq!(q.drop_oldest_frames(2, 5, None), 2); // m2, m3 go; 1 + 2 + 2 <= 5
        let mut rest = Sink::new(usize::MAX, usize::MAX);
        q.flush(1 << 20, |iov| rest.writev(iov)).unwrap();
        assert_eq!(rest.out, b"1m4");
    }

    #[test]
    fn dropping_stops_when_nothing_droppable_is_left() {
        let mut q = OutQueue::new();
        q.push_own(vec![b'x'; 10]);
        assert_eq!(q.drop_oldest_frames(5, 8, None), 0);
        assert_eq!(q.queued_bytes(), 10);
    }

    fn notice(count: u32) -> Vec<u8> {
        format!("<{count}>").into_bytes()
    }

    fn drain(q: &mut OutQueue) -> String {
        let mut sink = Sink::new(usize::MAX, usize::MAX);
        q.flush(1 << 20, |iov| sink.writev(iov)).unwrap();
        String::from_utf8(sink.out).unwrap()
    }

    #[test]
    fn a_gap_is_noted_once_before_the_next_frame() {
        // (frames queued, bytes sent first, limit, incoming, frames queued after the drop,
        //  dropped at the end, what the client reads)
        let cases: &[(&[&str], usize, usize, usize, &[&str], u32, &str)] = &[
            (
                &["m1..", "m2..", "m3.."],
                0,
                12,
                4,
                &["m4.."],
                0,
                "<2>m3..m4..",
            ),
            (
                &["m1..", "m2..", "m3.."],
                1,
                12,
                4,
                &["m4.."],
                0,
                "m1..<2>m4..",
            ),
            (&["m1.."], 1, 4, 4, &[], 1, "m1..<1>"),
            (&[], 0, 0, 0, &["m9.."], 3, "<3>m9.."),
        ];
        for (before, sent, limit, incoming, after, at_end, want) in cases {
            let mut q = OutQueue::new();
            for s in *before {
                q.push_frame(frame(s));
            }
            let mut first = Sink::new(usize::MAX, *sent);
            let _ = q.flush(1 << 20, |iov| first.writev(iov));
            q.drop_oldest_frames(*incoming, *limit, Some(&notice));
            if *at_end > 0 {
                q.note_dropped(*at_end, &notice);
            }
            for s in *after {
                q.push_frame(frame(s));
            }
            let read = String::from_utf8(first.out).unwrap() + &drain(&mut q);
            assert_eq!(read, *want, "{before:?} sent {sent}");
        }
    }

    #[test]
    fn notices_accumulate_instead_of_stacking() {
        let mut q = OutQueue::new();
        for s in ["m1..", "m2..", "m3..", "m4.."] {
            q.push_frame(frame(s));
        }
        assert_eq!(q.drop_oldest_frames(0, 11, Some(&notice)), 2); // <2>m3..m4..
        assert_eq!(q.queued_bytes(), 11);
        assert_eq!(q.drop_oldest_frames(0, 7, Some(&notice)), 1); // <3>m4..
        q.note_dropped(1, &notice); // the new one too: <3>m4..<1>
        q.note_dropped(2, &notice); // <3>m4..<3>
        q.push_frame(frame("m7.."));
        assert_eq!(q.queued_bytes(), 3 + 4 + 3 + 4);
        assert_eq!(drain(&mut q), "<3>m4..<3>m7..");
    }

    #[test]
    fn a_notice_in_flight_keeps_its_frame() {
        let mut q = OutQueue::new();
        q.push_frame(frame("m1.."));
        q.push_frame(frame("m2.."));
        q.drop_oldest_frames(0, 7, Some(&notice)); // <1>m2..
        let mut first = Sink::new(usize::MAX, 1);
        q.flush(1 << 20, |iov| first.writev(iov)).unwrap();
        q.push_frame(frame("m3.."));
        assert_eq!(q.drop_oldest_frames(0, 9, Some(&notice)), 1); // m2 stays; m3 goes
        assert_eq!(
            String::from_utf8(first.out).unwrap() + &drain(&mut q),
            "<1>m2..<1>"
        );
    }

    #[test]
    fn a_chunk_stays_small() {
        assert_eq!(std::mem::size_of::<Chunk>(), 40);
    }
}

#[cfg(test)]
mod take_front_tests {
    use super::*;

    #[test]
    fn shared_frames_are_handed_on_whole_and_others_in_pieces() {
        let mut q = OutQueue::new();
        let shared: Rc<[u8]> = Rc::from(&b"event"[..]);
        q.push_own(b"head".to_vec());
        q.push_small(b"");
        q.push_frame(shared.clone());
        q.push_pinned(Rc::from(&b"0123456789"[..]));
        assert!(q.take_front(0).is_none());
        assert!(matches!(q.take_front(10), Some(Front::Bytes(b)) if b == b"head"));
        match q.take_front(5) {
            Some(Front::Shared(f)) => assert!(Rc::ptr_eq(&f, &shared)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(q.take_front(4), Some(Front::Bytes(b)) if b == b"0123"));
        assert_eq!(q.queued_bytes(), 6);
        assert!(matches!(q.take_front(100), Some(Front::Bytes(b)) if b == b"456789"));
        assert!(q.is_empty());
        assert_eq!(q.queued_bytes(), 0);
        q.push_small(&[1; 9]);
        assert!(matches!(q.take_front(4), Some(Front::Bytes(b)) if b == [1; 4]));
        assert!(matches!(q.take_front(9), Some(Front::Bytes(b)) if b == [1; 5]));
    }

    #[test]
    fn inline_bytes_make_no_queue_slot_larger() {
        assert_eq!(std::mem::size_of::<Chunk>(), 40);
    }

    #[test]
    fn inline_bytes_are_written_like_any_other() {
        let mut q = OutQueue::new();
        q.push_small(b"012345678");
        q.push_small(b"9");
        q.push_frame(Rc::from(&b"shared"[..]));
        let mut out = Vec::new();
        let (done, n) = q
            .flush(1 << 20, |iov| {
                let mut n = 0;
                for slice in iov {
                    out.extend_from_slice(slice);
                    n += slice.len();
                }
                Ok(n)
            })
            .unwrap();
        assert_eq!((done, n), (Flushed::Drained, 16));
        assert_eq!(out, b"0123456789shared");
    }
}
