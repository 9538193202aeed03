//! Masking a job's secret values in its output: each value a job was given becomes `***`
//! before the output reaches the log file (and so the live log) or the tail kept in the
//! job's result.
//!
//! Output arrives in chunks cut anywhere, so masking is a stream ([`MaskStream`]): it
//! writes out everything that cannot be the start of a value any more and holds back the
//! rest, at most the longest value's length less one byte, until the next chunk or the
//! end. Where values overlap or one is a prefix of another, the union of their matches
//! is masked, so no part of either shows. A value of several lines is also masked line by
//! line, since output often prints one line at a time (or indents it).
//!
//! Masking is for accidents: a job can still print a value it was given in another form
//! (encoded, reversed, one character per line), and a value of a character or two masks
//! every occurrence of them.

use eventide_consensus::auth::Zeroizing;

/// What a masked value becomes.
pub const MASKED: &[u8] = b"***";

/// The values to mask (wiped when dropped).
#[derive(Clone, Default)]
pub struct Mask {
    /// Distinct and non-empty.
    values: Vec<Zeroizing<Vec<u8>>>,
    /// Whether some value starts with this byte: a quick test for most positions.
    starts: Vec<bool>,
}

impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mask({} values)", self.values.len())
    }
}

impl Mask {
    /// Masks each value, and each line of a value of several lines (lines of nothing but
    /// white space are left alone); empty values mask nothing.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Mask {
        let mut mask = Mask { starts: vec![false; 256], ..Mask::default() };
        for value in values {
            mask.add(value);
            if value.contains(&b'\n') {
                for line in value.split(|byte| *byte == b'\n') {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        mask.add(line);
                    }
                }
            }
        }
        mask
    }

    fn add(&mut self, value: &[u8]) {
        if value.is_empty() || self.values.iter().any(|known| known.as_slice() == value) {
            return;
        }
        self.starts[usize::from(value[0])] = true;
        self.values.push(Zeroizing::new(value.to_vec()));
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` masked at once.
    pub fn text(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        let mut stream = MaskStream::new(self.clone());
        let mut out = stream.push(text.as_bytes());
        out.extend(stream.finish());
        // Values are text, so masking cuts only at character boundaries.
        String::from_utf8(out)
            .unwrap_or_else(|bytes| String::from_utf8_lossy(bytes.as_bytes()).into_owned())
    }

    /// The length of the longest value `text` starts with; 0 for none.
    fn longest_at(&self, text: &[u8]) -> usize {
        self.values
            .iter()
            .filter(|value| text.starts_with(value))
            .map(|value| value.len())
            .max()
            .unwrap_or(0)
    }

    /// Whether more bytes after `text` could make it start with a value it does not
    /// start with yet.
    fn could_grow(&self, text: &[u8]) -> bool {
        self.values.iter().any(|value| value.len() > text.len() && value.starts_with(text))
    }
}

/// A [`Mask`] applied to a stream of chunks.
pub struct MaskStream {
    mask: Mask,
    /// Output not written out yet: it may still start a value.
    pending: Zeroizing<Vec<u8>>,
    /// How many bytes at the front of `pending` are inside a value already masked (its
    /// `***` written out).
    covered: usize,
}

impl MaskStream {
    pub fn new(mask: Mask) -> MaskStream {
        MaskStream { mask, pending: Zeroizing::new(Vec::new()), covered: 0 }
    }

    /// The masked output that `chunk` lets out; what may still start a value stays
    /// behind.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.mask.is_empty() {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        self.drain(false)
    }

    /// The rest, at the end of the output.
    pub fn finish(&mut self) -> Vec<u8> {
        self.drain(true)
    }

    /// Bytes held back, waiting for more output.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.pending.len()
    }

    fn drain(&mut self, at_end: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pending.len());
        let mut at = 0;
        while at < self.pending.len() {
            let rest = &self.pending[at..];
            let starts_value = self.mask.starts.get(usize::from(rest[0])) == Some(&true);
            if starts_value && !at_end && self.mask.could_grow(rest) {
                break;
            }
            let matched = if starts_value { self.mask.longest_at(rest) } else { 0 };
            if at < self.covered {
                self.covered = self.covered.max(at + matched);
            } else if matched > 0 {
                out.extend_from_slice(MASKED);
                self.covered = at + matched;
            } else {
                out.push(rest[0]);
            }
            at += 1;
        }
        self.pending.drain(..at);
        self.covered = self.covered.saturating_sub(at);
        out
    }
}

#[cfg(test)]
#[path = "mask_test.rs"]
mod tests;
