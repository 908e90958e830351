//! Bounded capture of a child's pipe: keep its head or its tail, drain the rest.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Which part of the stream to keep once it outgrows the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// The first `limit` bytes (a result).
    Head,
    /// The last `limit` bytes (an error message: the end says what went wrong).
    Tail,
}

/// One non-blocking pipe and what has been kept of it.
pub(crate) struct Capture {
    /// `None` once at end of file (or never opened): nothing left to poll.
    pipe: Option<File>,
    buf: Vec<u8>,
    keep: Keep,
    limit: usize,
    /// Whether anything was thrown away.
    truncated: bool,
}

impl Capture {
    /// Capture `pipe` (if any); it is made non-blocking so draining never stalls.
    pub(crate) fn new(pipe: Option<OwnedFd>, keep: Keep, limit: usize) -> io::Result<Capture> {
        if let Some(fd) = &pipe {
            set_nonblocking(fd.as_raw_fd())?;
        }
        Ok(Capture { pipe: pipe.map(File::from), buf: Vec::new(), keep, limit, truncated: false })
    }

    /// The descriptor to poll, while the pipe is open.
    pub(crate) fn fd(&self) -> Option<RawFd> {
        self.pipe.as_ref().map(|f| f.as_raw_fd())
    }

    /// Read everything available now; closes the pipe at end of file.
    pub(crate) fn pump(&mut self) {
        // Taken out while reading so `keep` can borrow `self`; put back unless finished.
        let Some(mut pipe) = self.pipe.take() else { return };
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => self.keep(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Any other error makes the pipe useless; stop watching it.
                Err(_) => return,
            }
        }
        self.pipe = Some(pipe);
    }

    fn keep(&mut self, data: &[u8]) {
        match self.keep {
            Keep::Head => {
                let take = self.limit.saturating_sub(self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                self.truncated |= take < data.len();
            }
            Keep::Tail => {
                if data.len() >= self.limit {
                    self.truncated |= !self.buf.is_empty() || data.len() > self.limit;
                    self.buf.clear();
                    self.buf.extend_from_slice(&data[data.len() - self.limit..]);
                } else {
                    self.buf.extend_from_slice(data);
                    if self.buf.len() > self.limit {
                        let cut = self.buf.len() - self.limit;
                        self.buf.drain(..cut);
                        self.truncated = true;
                    }
                }
            }
        }
    }

    /// The kept bytes (the pipe, if still open, is closed).
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The kept bytes as text. A cut tail may start inside a UTF-8 sequence: skip those
    /// continuation bytes rather than show a replacement character.
    pub(crate) fn into_text(self) -> String {
        let skip = if self.keep == Keep::Tail && self.truncated {
            self.buf.iter().take(3).take_while(|b| (**b & 0xC0) == 0x80).count()
        } else {
            0
        };
        String::from_utf8_lossy(&self.buf[skip..]).into_owned()
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller owns; results are checked.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(keep: Keep, limit: usize, chunks: &[&[u8]]) -> Capture {
        let mut c = Capture { pipe: None, buf: Vec::new(), keep, limit, truncated: false };
        for ch in chunks {
            c.keep(ch);
        }
        c
    }

    #[test]
    fn head_keeps_the_first_bytes() {
        let c = capture(Keep::Head, 4, &[b"ab", b"cdef", b"gh"]);
        assert!(c.truncated);
        assert_eq!(c.into_bytes(), b"abcd");
        let c = capture(Keep::Head, 4, &[b"ab", b"cd"]);
        assert!(!c.truncated);
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        assert_eq!(capture(Keep::Tail, 4, &[b"ab", b"cdef", b"gh"]).into_bytes(), b"efgh");
        assert_eq!(capture(Keep::Tail, 4, &[b"ab", b"cdefgh"]).into_bytes(), b"efgh");
        assert_eq!(capture(Keep::Tail, 4, &[b"abc"]).into_bytes(), b"abc");
    }

    #[test]
    fn tail_text_does_not_start_mid_character() {
        // "é!" is C3 A9 21: a 2-byte tail starts inside the "é", a 3-byte tail of "aé!" does not.
        let c = capture(Keep::Tail, 2, &["é!".as_bytes()]);
        assert_eq!(c.into_text(), "!");
        let c = capture(Keep::Tail, 3, &["aé!".as_bytes()]);
        assert_eq!(c.into_text(), "é!");
    }
}
