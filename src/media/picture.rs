//! Decoded pictures and captured frames: the values that flow between sources,
//! codecs, the window and the recorder.
//!
//! A [`Picture`] owns its pixels in one of two uncompressed layouts; a
//! [`CapturedFrame`] is what a source hands out, which may also be a JPEG a
//! camera compressed for us (so it can go on the wire without being decoded).

use std::time::Instant;

use bytes::Bytes;

use super::error::MediaError;
use crate::protocol::PixelFormat;

/// The uncompressed pixel layouts the media layer works in.
///
/// Colour conventions (see `convert`): RGB24 holds full-range (0..=255)
/// values; I420 holds BT.601 limited-range Y'CbCr (Y' 16..=235), which is what
/// Y4M tools assume for untagged files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PictureFormat {
    /// R G B interleaved, 3 bytes per pixel, rows top to bottom, no padding.
    Rgb24,
    /// Planar Y', then Cb, then Cr; chroma planes `ceil(w/2) x ceil(h/2)`, no padding.
    I420,
}

impl PictureFormat {
    /// The wire format carrying this layout uncompressed.
    pub fn pixel_format(self) -> PixelFormat {
        match self {
            PictureFormat::Rgb24 => PixelFormat::Rgb24,
            PictureFormat::I420 => PixelFormat::I420,
        }
    }

    /// Bytes of a picture of this size, `None` on overflow.
    pub fn byte_len(self, width: u32, height: u32) -> Option<usize> {
        self.pixel_format().raw_len(width, height)
    }
}

/// An uncompressed picture whose buffer length always matches its dimensions.
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    width: u32,
    height: u32,
    format: PictureFormat,
    data: Pixels,
}

/// A picture's bytes: owned (the usual case, reused between frames) or
/// shared read-only with other pictures and network messages, so a frame can
/// be sent raw without copying megabytes (see [`Picture::into_shared`]).
#[derive(Clone, Default)]
struct Pixels {
    owned: Vec<u8>,
    /// When set, these are the bytes and `owned` is unused.
    shared: Option<Bytes>,
}

impl Pixels {
    fn owned(data: Vec<u8>) -> Self {
        Pixels {
            owned: data,
            shared: None,
        }
    }

    fn shared(data: Bytes) -> Self {
        Pixels {
            owned: Vec::new(),
            shared: Some(data),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match &self.shared {
            Some(shared) => shared,
            None => &self.owned,
        }
    }

    /// The bytes as a mutable vector, copying them first if they are shared.
    fn make_owned(&mut self) -> &mut Vec<u8> {
        if let Some(shared) = self.shared.take() {
            self.owned.clear();
            self.owned.extend_from_slice(&shared);
        }
        &mut self.owned
    }

    fn into_bytes(self) -> Bytes {
        match self.shared {
            Some(shared) => shared,
            None => Bytes::from(self.owned),
        }
    }
}

impl PartialEq for Pixels {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Pixels {}

impl std::fmt::Debug for Picture {
    // Pixel buffers are megabytes: print the shape, not the contents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Picture({}x{} {:?})",
            self.width, self.height, self.format
        )
    }
}

impl Picture {
    /// Wraps `data` after checking its length against the dimensions.
    pub fn new(
        width: u32,
        height: u32,
        format: PictureFormat,
        data: Vec<u8>,
    ) -> Result<Self, MediaError> {
        Picture::checked(width, height, format, Pixels::owned(data))
    }

    /// Wraps shared bytes (checked like [`Picture::new`]): cloning the
    /// picture or sending it raw then costs a reference count, not a copy.
    pub fn from_shared(
        width: u32,
        height: u32,
        format: PictureFormat,
        data: Bytes,
    ) -> Result<Self, MediaError> {
        Picture::checked(width, height, format, Pixels::shared(data))
    }

    /// The one place a picture is made from outside bytes: their length
    /// must be what the dimensions and format need.
    fn checked(
        width: u32,
        height: u32,
        format: PictureFormat,
        data: Pixels,
    ) -> Result<Self, MediaError> {
        check_data_len(width, height, format, data.as_slice().len())?;
        Ok(Picture {
            width,
            height,
            format,
            data,
        })
    }

    /// A black picture (Y' 16 and neutral chroma for I420).
    pub fn black(width: u32, height: u32, format: PictureFormat) -> Result<Self, MediaError> {
        let mut picture = Picture::empty(format);
        picture.reshape(width, height, format)?;
        picture.fill_black();
        Ok(picture)
    }

    /// A 0x0 picture to decode or read into (`Decoder::decode_into`,
    /// `Y4mReader::read_frame_into` reshape it): the starting state of reused buffers.
    pub fn empty(format: PictureFormat) -> Self {
        Picture::empty_reusing(format, Vec::new())
    }

    /// As [`Picture::empty`], decoding into `buffer`'s memory: how a buffer
    /// the window has let go of is used again.
    pub fn empty_reusing(format: PictureFormat, mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        Picture {
            width: 0,
            height: 0,
            format,
            data: Pixels::owned(buffer),
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn format(&self) -> PictureFormat {
        self.format
    }

    /// The pixel bytes in the layout [`PictureFormat`] describes.
    pub fn data(&self) -> &[u8] {
        self.data.as_slice()
    }

    /// Turns owned bytes into shared ones, without copying, so clones of
    /// the picture cost a reference count (the self view and the message
    /// share one frame).
    pub fn make_shared(&mut self) {
        if self.data.shared.is_none() {
            let owned = std::mem::take(&mut self.data.owned);
            self.data.shared = Some(Bytes::from(owned));
        }
    }

    /// The bytes as `Bytes`, without copying: how a raw frame goes into a
    /// network message.
    pub fn into_shared(self) -> Bytes {
        self.data.into_bytes()
    }

    /// The Y', Cb and Cr planes of an I420 picture.
    pub fn i420_planes(&self) -> Option<(&[u8], &[u8], &[u8])> {
        if self.format != PictureFormat::I420 {
            return None;
        }
        let (luma_len, chroma_len) = i420_plane_lens(self.width, self.height);
        let (y, chroma) = self.data().split_at(luma_len);
        let (u, v) = chroma.split_at(chroma_len);
        Some((y, u, v))
    }

    pub(crate) fn i420_planes_mut(&mut self) -> Option<(&mut [u8], &mut [u8], &mut [u8])> {
        if self.format != PictureFormat::I420 {
            return None;
        }
        let (luma_len, chroma_len) = i420_plane_lens(self.width, self.height);
        let (y, chroma) = self.data.make_owned().split_at_mut(luma_len);
        let (u, v) = chroma.split_at_mut(chroma_len);
        Some((y, u, v))
    }

    pub(crate) fn data_mut(&mut self) -> &mut [u8] {
        self.data.make_owned()
    }

    /// Changes shape, keeping the allocation when it is big enough: the way
    /// per-frame buffers are reused. Contents are unspecified afterwards.
    pub(crate) fn reshape(
        &mut self,
        width: u32,
        height: u32,
        format: PictureFormat,
    ) -> Result<(), MediaError> {
        let len = checked_len(width, height, format)?;
        // Contents are unspecified after a reshape: shared bytes need no copy.
        self.data.shared = None;
        self.data.make_owned().resize(len, 0);
        self.width = width;
        self.height = height;
        self.format = format;
        Ok(())
    }

    pub(crate) fn fill_black(&mut self) {
        match self.format {
            PictureFormat::Rgb24 => self.data.make_owned().fill(0),
            PictureFormat::I420 => {
                if let Some((y, u, v)) = self.i420_planes_mut() {
                    y.fill(LIMITED_RANGE_BLACK);
                    u.fill(NEUTRAL_CHROMA);
                    v.fill(NEUTRAL_CHROMA);
                }
            }
        }
    }
}

/// Y' of black in limited ("studio swing") range.
pub(crate) const LIMITED_RANGE_BLACK: u8 = 16;
/// Cb/Cr of any grey.
pub(crate) const NEUTRAL_CHROMA: u8 = 128;

/// Byte lengths of the luma plane and of each chroma plane of an I420 picture.
pub(crate) fn i420_plane_lens(width: u32, height: u32) -> (usize, usize) {
    let (w, h) = (width as usize, height as usize);
    (w * h, w.div_ceil(2) * h.div_ceil(2))
}

fn checked_len(width: u32, height: u32, format: PictureFormat) -> Result<usize, MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::InvalidPicture {
            problem: format!("{width}x{height} has no pixels"),
        });
    }
    format
        .byte_len(width, height)
        .ok_or_else(|| MediaError::InvalidPicture {
            problem: format!("{width}x{height} is too large to address"),
        })
}

/// Checks that `len` bytes are exactly a `format` picture of this size.
fn check_data_len(
    width: u32,
    height: u32,
    format: PictureFormat,
    len: usize,
) -> Result<(), MediaError> {
    let expected = checked_len(width, height, format)?;
    if len != expected {
        return Err(MediaError::InvalidPicture {
            problem: format!("{format:?} {width}x{height} needs {expected} bytes, got {len}"),
        });
    }
    Ok(())
}

/// A JPEG image as a camera produced it, kept compressed so it can be sent as is.
#[derive(Clone, PartialEq, Eq)]
pub struct JpegImage {
    /// Dimensions read from the JPEG's own header.
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for JpegImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "JpegImage({}x{}, {} bytes)",
            self.width,
            self.height,
            self.data.len()
        )
    }
}

/// What a frame holds: decoded pixels, or a JPEG straight from an MJPEG camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameContent {
    Picture(Picture),
    Jpeg(JpegImage),
}

/// One frame from a source, with when it was captured.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    /// When the source produced the frame (for latency measurement and pacing).
    pub captured_at: Instant,
    /// The source's frame counter. For the test pattern this is the number
    /// drawn into the picture; gaps mean the source skipped frames while its
    /// consumer was busy.
    pub sequence: u64,
    pub content: FrameContent,
}

impl CapturedFrame {
    pub fn width(&self) -> u32 {
        match &self.content {
            FrameContent::Picture(picture) => picture.width(),
            FrameContent::Jpeg(jpeg) => jpeg.width,
        }
    }

    pub fn height(&self) -> u32 {
        match &self.content {
            FrameContent::Picture(picture) => picture.height(),
            FrameContent::Jpeg(jpeg) => jpeg.height,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picture_checks_length() {
        assert!(Picture::new(4, 2, PictureFormat::Rgb24, vec![0; 24]).is_ok());
        let error = Picture::new(4, 2, PictureFormat::Rgb24, vec![0; 23]).unwrap_err();
        assert!(
            error.to_string().contains("needs 24 bytes, got 23"),
            "{error}"
        );
        assert!(Picture::new(0, 2, PictureFormat::Rgb24, vec![]).is_err());
        // 3x3 I420: 9 luma + 2x2 Cb + 2x2 Cr.
        assert!(Picture::new(3, 3, PictureFormat::I420, vec![0; 17]).is_ok());
    }

    #[test]
    fn black_i420_is_limited_range_black() {
        let black = Picture::black(3, 3, PictureFormat::I420).unwrap();
        let (y, u, v) = black.i420_planes().unwrap();
        assert_eq!((y.len(), u.len(), v.len()), (9, 4, 4));
        assert!(y.iter().all(|&b| b == 16));
        assert!(u.iter().chain(v).all(|&b| b == 128));
    }
}
