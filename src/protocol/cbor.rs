//! The few CBOR primitives the codec needs, on top of `ciborium-ll`'s heads.
//!
//! [`Reader`] walks a complete message held in memory. Every declared length
//! is checked against the bytes actually left in the message (and by the
//! caller against a limit) before anything is allocated or sliced, nesting is
//! bounded, and indefinite lengths are refused, so a hostile message costs at
//! most time linear in its own length. The writer functions produce the
//! shortest ("preferred") encoding of each head.

use bytes::BytesMut;
use ciborium_ll::{Decoder, Encoder, Header};

use super::limits::{MAX_IDENT_LEN, MAX_MAP_ENTRIES, MAX_NESTING};
use super::ProtocolError;

/// A cursor over one CBOR message.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Offset of the next unread byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn malformed(&self, problem: &'static str) -> ProtocolError {
        ProtocolError::Malformed {
            offset: self.pos,
            problem,
        }
    }

    /// Reads the next head (major type and argument).
    pub(crate) fn head(&mut self) -> Result<Header, ProtocolError> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let mut decoder = Decoder::from(rest);
        match decoder.pull() {
            // RFC 8949 section 3.3: a simple value below 32 has only the
            // one-byte form; `0xf8 0x14` is not well-formed `false`.
            Ok(Header::Simple(value)) if value < 32 && decoder.offset() > 1 => {
                Err(self.malformed("a two-byte simple value below 32 is not well-formed CBOR"))
            }
            Ok(header) => {
                self.pos += decoder.offset();
                Ok(header)
            }
            Err(ciborium_ll::Error::Io(_)) => {
                Err(self.malformed("a CBOR head runs past the end of the message"))
            }
            Err(ciborium_ll::Error::Syntax(at)) => Err(ProtocolError::Malformed {
                offset: self.pos + at,
                problem: "invalid CBOR head (reserved additional information)",
            }),
        }
    }

    /// Takes the next `len` bytes (the content of a byte or text string),
    /// refusing a length beyond what the message holds.
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], ProtocolError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| self.malformed("a declared length runs past the end of the message"))?;
        let bytes = self.data.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(bytes)
    }

    /// Checks that `count` items (each at least one byte) can still fit.
    fn fits(&self, count: usize, per_item: usize) -> Result<(), ProtocolError> {
        match count.checked_mul(per_item) {
            Some(n) if n <= self.remaining() => Ok(()),
            _ => Err(self
                .malformed("a declared array or map length exceeds the bytes left in the message")),
        }
    }

    /// Skips one complete item, checking it by the same rules as a known
    /// field (PROTOCOL.md section 4): definite lengths only, text is valid
    /// UTF-8, map keys are text of at most `MAX_IDENT_LEN` bytes, at most
    /// `MAX_MAP_ENTRIES` entries per map, declared lengths within the bytes
    /// left. Nothing is allocated.
    ///
    /// `depth` is the nesting level a container in this position would
    /// occupy (the message's outer array is level 1). Arrays, maps and tags
    /// are levels; a scalar is not, so a scalar inside `MAX_NESTING`
    /// containers is allowed and one more container is not.
    pub(crate) fn skip(&mut self, depth: usize) -> Result<(), ProtocolError> {
        match self.head()? {
            Header::Positive(_) | Header::Negative(_) | Header::Float(_) | Header::Simple(_) => {
                Ok(())
            }
            Header::Bytes(Some(len)) => self.take(len).map(|_| ()),
            Header::Text(Some(len)) => {
                let start = self.pos;
                let text = self.take(len)?;
                std::str::from_utf8(text)
                    .map(|_| ())
                    .map_err(|e| ProtocolError::InvalidValue {
                        field: "text in an unknown field",
                        problem: format!(
                            "invalid UTF-8 at byte {} of the string (message byte {start})",
                            e.valid_up_to()
                        ),
                    })
            }
            Header::Array(Some(len)) => {
                check_nesting(depth)?;
                self.fits(len, 1)?;
                (0..len).try_for_each(|_| self.skip(depth + 1))
            }
            Header::Map(Some(len)) => {
                check_nesting(depth)?;
                self.container_len("map in an unknown field", len, MAX_MAP_ENTRIES, 2)?;
                (0..len).try_for_each(|_| {
                    self.text("map key in an unknown field", MAX_IDENT_LEN)?;
                    self.skip(depth + 1)
                })
            }
            Header::Tag(_) => {
                check_nesting(depth)?;
                self.skip(depth + 1)
            }
            Header::Break => Err(self.malformed("unexpected CBOR break")),
            Header::Bytes(None) | Header::Text(None) | Header::Array(None) | Header::Map(None) => {
                Err(self.malformed("indefinite-length CBOR items are not allowed"))
            }
        }
    }

    /// Reads an unsigned integer.
    pub(crate) fn uint(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        match self.head()? {
            Header::Positive(n) => Ok(n),
            other => Err(wrong_type(field, "an unsigned integer", &other)),
        }
    }

    /// Reads an unsigned integer no larger than `max`.
    pub(crate) fn uint_max(&mut self, field: &'static str, max: u64) -> Result<u64, ProtocolError> {
        let value = self.uint(field)?;
        if value > max {
            return Err(ProtocolError::LimitExceeded {
                what: field,
                value,
                limit: max,
            });
        }
        Ok(value)
    }

    /// Reads a boolean.
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, ProtocolError> {
        match self.head()? {
            Header::Simple(ciborium_ll::simple::FALSE) => Ok(false),
            Header::Simple(ciborium_ll::simple::TRUE) => Ok(true),
            other => Err(wrong_type(field, "a boolean", &other)),
        }
    }

    /// Reads a definite-length UTF-8 text string of at most `max` bytes; the
    /// length is checked before the bytes are looked at.
    pub(crate) fn text(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a str, ProtocolError> {
        let len = self.string_len(field, StringKind::Text, max)?;
        let start = self.pos;
        std::str::from_utf8(self.take(len)?).map_err(|e| ProtocolError::InvalidValue {
            field,
            problem: format!(
                "invalid UTF-8 at byte {} of the string (message byte {start})",
                e.valid_up_to()
            ),
        })
    }

    /// Reads a definite-length byte string of at most `max` bytes and returns
    /// its position in the message, so the caller can slice it without a copy.
    pub(crate) fn byte_range(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<std::ops::Range<usize>, ProtocolError> {
        let len = self.string_len(field, StringKind::Bytes, max)?;
        let start = self.pos;
        self.take(len)?;
        Ok(start..self.pos)
    }

    /// Reads the head of a definite-length string of `kind` and checks its
    /// length against `max` before anything is taken.
    fn string_len(
        &mut self,
        field: &'static str,
        kind: StringKind,
        max: usize,
    ) -> Result<usize, ProtocolError> {
        let len = match (kind, self.head()?) {
            (StringKind::Text, Header::Text(Some(len)))
            | (StringKind::Bytes, Header::Bytes(Some(len))) => len,
            (StringKind::Text, Header::Text(None)) | (StringKind::Bytes, Header::Bytes(None)) => {
                return Err(self.malformed("indefinite-length CBOR items are not allowed"))
            }
            (StringKind::Text, other) => return Err(wrong_type(field, "a text string", &other)),
            (StringKind::Bytes, other) => return Err(wrong_type(field, "a byte string", &other)),
        };
        if len > max {
            return Err(ProtocolError::LimitExceeded {
                what: field,
                value: len as u64,
                limit: max as u64,
            });
        }
        Ok(len)
    }

    /// Reads an array head with at most `max` elements.
    pub(crate) fn array(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<usize, ProtocolError> {
        match self.head()? {
            Header::Array(Some(len)) => self.container_len(field, len, max, 1),
            Header::Array(None) => {
                Err(self.malformed("indefinite-length CBOR items are not allowed"))
            }
            other => Err(wrong_type(field, "an array", &other)),
        }
    }

    /// Reads a map head with at most `max` entries.
    pub(crate) fn map(&mut self, field: &'static str, max: usize) -> Result<usize, ProtocolError> {
        match self.head()? {
            Header::Map(Some(len)) => self.container_len(field, len, max, 2),
            Header::Map(None) => {
                Err(self.malformed("indefinite-length CBOR items are not allowed"))
            }
            other => Err(wrong_type(field, "a map", &other)),
        }
    }

    fn container_len(
        &self,
        field: &'static str,
        len: usize,
        max: usize,
        per_item: usize,
    ) -> Result<usize, ProtocolError> {
        if len > max {
            return Err(ProtocolError::LimitExceeded {
                what: field,
                value: len as u64,
                limit: max as u64,
            });
        }
        self.fits(len, per_item)?;
        Ok(len)
    }
}

/// Refuses a container (array, map or tag) at nesting level `depth`
/// beyond `MAX_NESTING`.
fn check_nesting(depth: usize) -> Result<(), ProtocolError> {
    if depth > MAX_NESTING {
        return Err(ProtocolError::LimitExceeded {
            what: "CBOR nesting depth",
            value: depth as u64,
            limit: MAX_NESTING as u64,
        });
    }
    Ok(())
}

fn wrong_type(field: &'static str, expected: &'static str, found: &Header) -> ProtocolError {
    ProtocolError::WrongType {
        field,
        expected,
        found: type_name(found),
    }
}

/// The name of a head's CBOR type, for error messages.
pub(crate) fn type_name(header: &Header) -> &'static str {
    match header {
        Header::Positive(_) => "an unsigned integer",
        Header::Negative(_) => "a negative integer",
        Header::Float(_) => "a float",
        Header::Simple(ciborium_ll::simple::FALSE | ciborium_ll::simple::TRUE) => "a boolean",
        Header::Simple(ciborium_ll::simple::NULL) => "null",
        Header::Simple(_) => "a simple value",
        Header::Tag(_) => "a tag",
        Header::Break => "a break",
        Header::Bytes(_) => "a byte string",
        Header::Text(_) => "a text string",
        Header::Array(_) => "an array",
        Header::Map(_) => "a map",
    }
}

/// A `ciborium_io::Write` that appends to a `BytesMut` and cannot fail.
struct Sink<'a>(&'a mut BytesMut);

impl ciborium_io::Write for Sink<'_> {
    type Error = std::convert::Infallible;

    fn write_all(&mut self, data: &[u8]) -> Result<(), Self::Error> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Appends a head in its shortest encoding.
pub(crate) fn put_head(dst: &mut BytesMut, header: Header) {
    match Encoder::from(Sink(dst)).push(header) {
        Ok(()) => {}
        Err(never) => match never {},
    }
}

/// Appends a text string.
pub(crate) fn put_text(dst: &mut BytesMut, text: &str) {
    put_head(dst, Header::Text(Some(text.len())));
    dst.extend_from_slice(text.as_bytes());
}

/// Appends an unsigned integer.
pub(crate) fn put_uint(dst: &mut BytesMut, value: u64) {
    put_head(dst, Header::Positive(value));
}

/// Appends a boolean.
pub(crate) fn put_bool(dst: &mut BytesMut, value: bool) {
    let simple = if value {
        ciborium_ll::simple::TRUE
    } else {
        ciborium_ll::simple::FALSE
    };
    put_head(dst, Header::Simple(simple));
}

/// Which of CBOR's two string types a field holds.
#[derive(Clone, Copy)]
enum StringKind {
    Text,
    Bytes,
}
