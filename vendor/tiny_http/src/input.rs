//! orchestratr patch: a connection's buffered input with deadlines (request
//! lines, exact reads, whole bodies under the stall and minimal-rate rules),
//! split from `client.rs`.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::Shared;
use crate::limits::ServerOptions;
use crate::parse::Framing;

/// Buffered input with deadlines. The buffer is fixed; lines and bodies are
/// copied out under their own limits.
pub(crate) struct Input {
    pub(crate) shared: Arc<Shared>,
    pub(crate) buf: Box<[u8]>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

pub(crate) enum ReadErr {
    /// The deadline passed.
    Timeout,
    /// The peer closed or the socket failed.
    Closed,
    /// A line exceeded its limit.
    TooLong,
}

impl Input {
    pub(crate) fn available(&self) -> usize {
        self.end - self.start
    }

    /// Read more bytes, waiting at most until `until`. The buffer is only
    /// allocated once the first byte is there, so a silent connection costs
    /// no buffer.
    pub(crate) fn fill(&mut self, until: Instant) -> Result<(), ReadErr> {
        if self.buf.is_empty() {
            loop {
                let now = Instant::now();
                if now >= until {
                    return Err(ReadErr::Timeout);
                }
                let wait = (until - now).max(Duration::from_millis(1));
                if self.shared.conn.set_read_timeout(Some(wait)).is_err() {
                    return Err(ReadErr::Closed);
                }
                match self.shared.conn.wait_readable() {
                    Ok(true) => break,
                    Ok(false) => return Err(ReadErr::Closed),
                    Err(e) => match e.kind() {
                        std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut => continue,
                        _ => return Err(ReadErr::Closed),
                    },
                }
            }
            self.buf = vec![0u8; INPUT_BUFFER].into_boxed_slice();
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            let now = Instant::now();
            if now >= until {
                return Err(ReadErr::Timeout);
            }
            let wait = (until - now).max(Duration::from_millis(1));
            if self.shared.conn.set_read_timeout(Some(wait)).is_err() {
                return Err(ReadErr::Closed);
            }
            let end = self.end;
            match (&self.shared.conn).read(&mut self.buf[end..]) {
                Ok(0) => return Err(ReadErr::Closed),
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) => match e.kind() {
                    std::io::ErrorKind::Interrupted => continue,
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => continue,
                    _ => return Err(ReadErr::Closed),
                },
            }
        }
    }

    /// Append one line (without CRLF / LF) to `out`; at most `max` bytes
    /// including the line end.
    pub(crate) fn read_line(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        until: &dyn Fn() -> Instant,
    ) -> Result<(), ReadErr> {
        let mut taken = 0usize;
        loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(i) = avail.iter().position(|&b| b == b'\n') {
                if taken + i + 1 > max {
                    return Err(ReadErr::TooLong);
                }
                out.extend_from_slice(&avail[..i]);
                self.start += i + 1;
                if out.last() == Some(&b'\r') {
                    out.pop();
                }
                return Ok(());
            }
            if taken + avail.len() >= max {
                return Err(ReadErr::TooLong);
            }
            taken += avail.len();
            out.extend_from_slice(avail);
            self.start = self.end;
            self.fill(until())?;
        }
    }

    /// Append exactly `n` bytes to `out`.
    fn read_exact(
        &mut self,
        out: &mut Vec<u8>,
        mut n: usize,
        until: &dyn Fn(usize) -> Instant,
    ) -> Result<(), ReadErr> {
        let base = out.len();
        while n > 0 {
            if self.available() == 0 {
                self.fill(until(out.len() - base))?;
            }
            let k = n.min(self.available());
            out.extend_from_slice(&self.buf[self.start..self.start + k]);
            self.start += k;
            n -= k;
        }
        Ok(())
    }
}

/// Size of a connection's input buffer, bytes (allocated at its first byte).
pub(crate) const INPUT_BUFFER: usize = 8 * 1024;

pub(crate) enum BodyErr {
    TooLarge,
    Timeout,
    Malformed,
    Closed,
}

impl From<ReadErr> for BodyErr {
    fn from(e: ReadErr) -> Self {
        match e {
            ReadErr::Timeout => BodyErr::Timeout,
            ReadErr::Closed => BodyErr::Closed,
            ReadErr::TooLong => BodyErr::Malformed,
        }
    }
}

/// Read a whole body under the stall deadline and the minimal rate.
pub(crate) fn read_body(input: &mut Input, framing: &Framing, opts: &ServerOptions) -> Result<Vec<u8>, BodyErr> {
    let start = Instant::now();
    let stall = opts.body_timeout;
    let rate = opts.body_min_rate.max(1);
    // Deadline for the next byte given `got` bytes so far: no stall longer
    // than `stall`, and on average `rate` bytes/s after the first `stall`.
    let last = std::cell::Cell::new(start);
    let until = |got: usize| {
        let now = Instant::now();
        let stall_at = now.max(last.get()) + stall;
        last.set(now);
        let rate_at = start + stall + Duration::from_secs_f64(got as f64 / rate as f64);
        stall_at.min(rate_at)
    };
    match *framing {
        Framing::Length(n) => {
            let mut body = Vec::with_capacity(n);
            input.read_exact(&mut body, n, &until)?;
            Ok(body)
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            loop {
                let mut line = Vec::new();
                let got = body.len();
                input.read_line(&mut line, 1024, &|| until(got))?;
                let size_txt = line.split(|&b| b == b';').next().unwrap_or(&[]);
                let size_txt = std::str::from_utf8(size_txt)
                    .map_err(|_| BodyErr::Malformed)?
                    .trim();
                let size = usize::from_str_radix(size_txt, 16).map_err(|_| BodyErr::Malformed)?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    let mut budget = opts.max_header_bytes;
                    loop {
                        let mut t = Vec::new();
                        input.read_line(&mut t, budget, &|| until(got))?;
                        if t.is_empty() {
                            return Ok(body);
                        }
                        budget = budget.saturating_sub(t.len() + 2);
                    }
                }
                if body.len().saturating_add(size) > opts.max_body {
                    return Err(BodyErr::TooLarge);
                }
                input.read_exact(&mut body, size, &|k| until(got + k))?;
                let mut crlf = Vec::new();
                input.read_line(&mut crlf, 2, &|| until(body.len()))?;
                if !crlf.is_empty() {
                    return Err(BodyErr::Malformed);
                }
            }
        }
        Framing::None => Ok(Vec::new()),
    }
}
