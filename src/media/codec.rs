//! Frames to payloads and back: the raw (RGB24, I420), JPEG and H.264 codecs.
//!
//! [`Encoder`] and [`Decoder`] keep their scratch buffers between frames so a
//! call's steady state allocates nothing per frame (apart from what the JPEG
//! crates do inside). JPEG from an MJPEG camera is passed through untouched
//! when JPEG is what the peer wants.
//!
//! Raw payload lengths are checked against the announced size before anything
//! is touched; JPEG payloads are decoded with a size limit taken from the
//! media layer's largest frame, so a hostile header cannot make us allocate
//! gigabytes.

use bytes::Bytes;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::convert::{self, ChromaSubsampling, ColourRange};
use super::error::MediaError;
use super::h264::{H264Decoder, H264Encoder, H264Frame};
use super::options::Quality;
use super::picture::{
    i420_plane_lens, CapturedFrame, FrameContent, JpegImage, Picture, PictureFormat,
};
use crate::protocol::limits::{MAX_HEIGHT, MAX_WIDTH};
use crate::protocol::{fit_size, PixelFormat};

/// A picture encoded as one video payload, borrowing the encoder's buffer (or
/// the captured JPEG). Not a message: [`crate::protocol::EncodedFrame`] is the
/// bytes of a whole message on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedPicture<'a> {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub payload: &'a [u8],
}

impl<'a> EncodedPicture<'a> {
    /// A `format` payload announced as `width` x `height`.
    pub fn new(format: PixelFormat, width: u32, height: u32, payload: &'a [u8]) -> Self {
        EncodedPicture {
            format,
            width,
            height,
            payload,
        }
    }
}

/// An encoded picture that owns its payload, ready to go into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedEncodedPicture {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub payload: Bytes,
}

impl OwnedEncodedPicture {
    /// The same picture, borrowing the payload.
    pub fn borrowed(&self) -> EncodedPicture<'_> {
        EncodedPicture::new(self.format, self.width, self.height, &self.payload)
    }
}

/// Turns captured frames into payloads of a chosen [`PixelFormat`].
#[derive(Debug)]
pub struct Encoder {
    /// The frame in another uncompressed layout (RGB for JPEG, or the raw format asked).
    converted: Picture,
    /// A camera JPEG decoded because the peer wants raw pixels.
    decoded: Picture,
    /// The JPEG bitstream being produced.
    jpeg: Vec<u8>,
    /// The largest picture the receiver takes; larger ones are scaled down.
    max_size: (u32, u32),
    /// A picture scaled down to `max_size`.
    scaled: Picture,
    scaler: convert::Scaler,
    /// H.264's state: the pictures before shape the next one's bytes.
    h264: H264Encoder,
    /// The H.264 access unit being produced.
    h264_out: Vec<u8>,
    /// What the last H.264 picture became.
    last_h264: Option<H264Frame>,
    /// The capture instant H.264 timestamps count from.
    epoch: Option<std::time::Instant>,
    /// H.264 pictures are sent at this fraction (numerator, denominator)
    /// of the captured size: the rate control's last lever.
    h264_scale: (u32, u32),
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Encoder {
            converted: Picture::empty(PictureFormat::Rgb24),
            decoded: Picture::empty(PictureFormat::Rgb24),
            jpeg: Vec::new(),
            max_size: (u32::MAX, u32::MAX),
            scaled: Picture::empty(PictureFormat::Rgb24),
            scaler: convert::Scaler::new(),
            h264: H264Encoder::new(),
            h264_out: Vec::new(),
            last_h264: None,
            epoch: None,
            h264_scale: (1, 1),
        }
    }

    /// From now on H.264 pictures are sent at `numerator / denominator` of
    /// the captured size (keeping its shape; within the receiver's limits
    /// too). A change of size starts the stream again with a keyframe.
    pub fn set_h264_scale(&mut self, numerator: u32, denominator: u32) {
        self.h264_scale = (numerator.max(1), denominator.max(numerator).max(1));
    }

    /// The fraction of the picture's size H.264 is sent at.
    pub fn h264_scale(&self) -> (u32, u32) {
        self.h264_scale
    }

    /// The H.264 encoder, to steer its bitrate and ask for keyframes.
    pub fn h264(&mut self) -> &mut H264Encoder {
        &mut self.h264
    }

    /// What the last picture encoded as H.264 became (`None` before the first).
    pub fn last_h264_frame(&self) -> Option<H264Frame> {
        self.last_h264
    }

    /// From now on, pictures larger than `width` x `height` are scaled down
    /// (keeping their shape) before they are encoded: the receiver's limits.
    pub fn set_max_size(&mut self, width: u32, height: u32) {
        self.max_size = (width, height);
    }

    /// Encodes `frame` as `format`; `quality` matters only for JPEG.
    ///
    /// Rgb24/I420 payloads are the picture bytes in the layout documented on
    /// [`PixelFormat`]; a frame already in that layout is borrowed, not copied.
    /// An H.264 payload is empty when the encoder skipped the picture (see
    /// [`Encoder::last_h264_frame`]): nothing is to be sent then.
    pub fn encode<'a>(
        &'a mut self,
        frame: &'a CapturedFrame,
        format: PixelFormat,
        quality: Quality,
    ) -> Result<EncodedPicture<'a>, MediaError> {
        let Encoder {
            converted,
            decoded,
            jpeg,
            max_size: (max_width, max_height),
            scaled,
            scaler,
            h264,
            h264_out,
            last_h264,
            epoch,
            h264_scale: (numerator, denominator),
        } = self;
        let (max_width, max_height) = if format == PixelFormat::H264 {
            let scaled = |side: u32| {
                (u64::from(side) * u64::from(*numerator) / u64::from(*denominator)) as u32
            };
            (
                (*max_width).min(scaled(frame.width()).max(1)),
                (*max_height).min(scaled(frame.height()).max(1)),
            )
        } else {
            (*max_width, *max_height)
        };
        let (max_width, max_height) = (&max_width, &max_height);
        let fits =
            |width, height| fit_size(width, height, *max_width, *max_height) == (width, height);
        let picture = match (&frame.content, format) {
            (FrameContent::Jpeg(camera_jpeg), PixelFormat::Jpeg)
                if fits(camera_jpeg.width, camera_jpeg.height) =>
            {
                return Ok(EncodedPicture {
                    format,
                    width: camera_jpeg.width,
                    height: camera_jpeg.height,
                    payload: &camera_jpeg.data,
                });
            }
            (FrameContent::Jpeg(camera_jpeg), _) => {
                decode_jpeg_into(&camera_jpeg.data, decoded)?;
                &*decoded
            }
            (FrameContent::Picture(picture), _) => picture,
        };
        let picture = if fits(picture.width(), picture.height()) {
            picture
        } else {
            let (width, height) =
                fit_size(picture.width(), picture.height(), *max_width, *max_height);
            scaler.scale_into(picture, width, height, scaled)?;
            &*scaled
        };
        let (mut width, mut height) = (picture.width(), picture.height());
        let payload: &[u8] = match format {
            PixelFormat::H264 => {
                let i420 = if picture.format() == PictureFormat::I420 {
                    picture
                } else {
                    convert::convert_into(picture, PictureFormat::I420, converted)?;
                    &*converted
                };
                let start = *epoch.get_or_insert(frame.captured_at);
                let time = frame.captured_at.saturating_duration_since(start);
                let (kind, encoded_width, encoded_height) = h264.encode(i420, time, h264_out)?;
                *last_h264 = Some(kind);
                (width, height) = (encoded_width, encoded_height);
                h264_out
            }
            PixelFormat::Rgb24 | PixelFormat::I420 => {
                let layout = match format {
                    PixelFormat::Rgb24 => PictureFormat::Rgb24,
                    _ => PictureFormat::I420,
                };
                if picture.format() == layout {
                    picture.data()
                } else {
                    convert::convert_into(picture, layout, converted)?;
                    converted.data()
                }
            }
            PixelFormat::Jpeg => {
                let rgb = if picture.format() == PictureFormat::Rgb24 {
                    picture
                } else {
                    convert::convert_into(picture, PictureFormat::Rgb24, converted)?;
                    &*converted
                };
                encode_jpeg(rgb, quality, jpeg)?;
                jpeg
            }
        };
        Ok(EncodedPicture {
            format,
            width,
            height,
            payload,
        })
    }
}

impl Encoder {
    /// As [`Encoder::encode`], with the payload as `Bytes` for a message;
    /// `None` when the encoder skipped the picture (H.264's rate control).
    ///
    /// When the payload is the frame's own buffer (a raw frame already in
    /// the asked layout, a camera's JPEG passed through) the buffer is moved,
    /// not copied: megabytes per frame at raw HD sizes. Other payloads (JPEG
    /// output, converted layouts) are copied out of the encoder's reused
    /// scratch buffers.
    pub fn encode_to_bytes(
        &mut self,
        frame: CapturedFrame,
        format: PixelFormat,
        quality: Quality,
    ) -> Result<Option<OwnedEncodedPicture>, MediaError> {
        let encoded = self.encode(&frame, format, quality)?;
        if encoded.payload.is_empty() {
            return Ok(None);
        }
        let (width, height) = (encoded.width, encoded.height);
        let own = match &frame.content {
            FrameContent::Picture(picture) => picture.data(),
            FrameContent::Jpeg(jpeg) => &jpeg.data,
        };
        let borrowed = std::ptr::eq(own, encoded.payload);
        if !borrowed {
            return Ok(Some(OwnedEncodedPicture {
                format,
                width,
                height,
                payload: Bytes::copy_from_slice(encoded.payload),
            }));
        }
        let payload = match frame.content {
            FrameContent::Picture(picture) => picture.into_shared(),
            FrameContent::Jpeg(jpeg) => Bytes::from(jpeg.data),
        };
        Ok(Some(OwnedEncodedPicture {
            format,
            width,
            height,
            payload,
        }))
    }
}

fn encode_jpeg(rgb: &Picture, quality: Quality, out: &mut Vec<u8>) -> Result<(), MediaError> {
    let too_large = || MediaError::JpegEncode {
        reason: format!(
            "{}x{} exceeds JPEG's 65535x65535 limit",
            rgb.width(),
            rgb.height()
        ),
    };
    let width = u16::try_from(rgb.width()).map_err(|_| too_large())?;
    let height = u16::try_from(rgb.height()).map_err(|_| too_large())?;
    out.clear();
    // jpeg-encoder's defaults: baseline, 4:2:0 chroma below quality 90 and
    // 4:4:4 from 90, standard Huffman tables (optimised tables cost a second pass).
    let encoder = jpeg_encoder::Encoder::new(&mut *out, quality.get());
    encoder
        .encode(rgb.data(), width, height, jpeg_encoder::ColorType::Rgb)
        .map_err(|error| MediaError::JpegEncode {
            reason: error.to_string(),
        })
}

fn jpeg_options() -> DecoderOptions {
    DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(MAX_WIDTH as usize)
        .set_max_height(MAX_HEIGHT as usize)
        // Reject damaged data instead of showing a best-effort half picture.
        .set_strict_mode(true)
}

/// The dimensions in a JPEG's header, without decoding the image.
pub(crate) fn jpeg_dimensions(data: &[u8]) -> Result<(u32, u32), MediaError> {
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), jpeg_options());
    decoder
        .decode_headers()
        .map_err(|error| MediaError::CorruptJpeg {
            reason: error.to_string(),
        })?;
    let info = decoder.info().ok_or_else(|| MediaError::CorruptJpeg {
        reason: "no frame header".to_owned(),
    })?;
    Ok((u32::from(info.width), u32::from(info.height)))
}

/// Decodes a JPEG to RGB24 into `out`, reusing its allocation.
pub(crate) fn decode_jpeg_into(data: &[u8], out: &mut Picture) -> Result<(), MediaError> {
    let corrupt = |reason: String| MediaError::CorruptJpeg { reason };
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), jpeg_options());
    decoder
        .decode_headers()
        .map_err(|error| corrupt(error.to_string()))?;
    let info = decoder
        .info()
        .ok_or_else(|| corrupt("no frame header".to_owned()))?;
    out.reshape(
        u32::from(info.width),
        u32::from(info.height),
        PictureFormat::Rgb24,
    )?;
    if decoder.output_buffer_size() != Some(out.data().len()) {
        return Err(corrupt("unexpected output size".to_owned()));
    }
    decoder
        .decode_into(out.data_mut())
        .map_err(|error| corrupt(error.to_string()))
}

/// Wraps a camera's MJPEG frame, reading its real dimensions from its header.
pub(crate) fn camera_jpeg(data: Vec<u8>) -> Result<JpegImage, MediaError> {
    let (width, height) = jpeg_dimensions(&data)?;
    Ok(JpegImage {
        width,
        height,
        data,
    })
}

/// Turns received payloads back into pictures.
#[derive(Debug)]
pub struct Decoder {
    /// A JPEG's RGB pixels when another layout was asked for.
    rgb: Picture,
    /// H.264's state: each frame is decoded on top of the ones before.
    h264: H264Decoder,
    /// An H.264 picture before it becomes RGB.
    yuv: Picture,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            rgb: Picture::empty(PictureFormat::Rgb24),
            h264: H264Decoder::new(),
            yuv: Picture::empty(PictureFormat::I420),
        }
    }

    /// Frames were lost before the next one: an inter-coded stream (H.264)
    /// waits for its next keyframe.
    pub fn lost_frames(&mut self) {
        self.h264.lost_frames();
    }

    /// Whether the H.264 stream waits for a keyframe (one should be asked for).
    pub fn awaiting_keyframe(&self) -> bool {
        self.h264.awaiting_keyframe()
    }

    /// Decodes a received payload once into RGB24 for the window and, when
    /// `recorded` is given, into I420 for the recording. H.264 must be
    /// decoded exactly once per frame (the decoder's state moves on), so
    /// this, not two `decode_into` calls, is how a frame is both shown and
    /// recorded.
    pub fn decode_for_show_and_record(
        &mut self,
        picture: &OwnedEncodedPicture,
        shown: &mut Picture,
        recorded: Option<&mut Picture>,
    ) -> Result<(), MediaError> {
        if picture.format != PixelFormat::H264 {
            self.decode_bytes_into(picture, PictureFormat::Rgb24, shown)?;
            if let Some(recorded) = recorded {
                self.decode_into(picture.borrowed(), PictureFormat::I420, recorded)?;
            }
            return Ok(());
        }
        let (width, height) = (picture.width, picture.height);
        check_announced_size(width, height)?;
        let yuv = recorded.unwrap_or(&mut self.yuv);
        self.h264
            .decode_into(&picture.payload, width, height, yuv)?;
        convert::convert_into(yuv, PictureFormat::Rgb24, shown)
    }

    /// Decodes a payload into `out` in the `target` layout (RGB24 for
    /// display, I420 for recording), reusing `out`'s allocation.
    pub fn decode_into(
        &mut self,
        picture: EncodedPicture<'_>,
        target: PictureFormat,
        out: &mut Picture,
    ) -> Result<(), MediaError> {
        let EncodedPicture {
            format,
            width,
            height,
            payload,
        } = picture;
        check_announced_size(width, height)?;
        match format {
            PixelFormat::Rgb24 | PixelFormat::I420 => {
                check_raw_payload(format, width, height, payload.len())?;
                match (format, target) {
                    (PixelFormat::Rgb24, PictureFormat::I420) => {
                        convert::rgb_to_i420(payload, width, height, out)
                    }
                    (PixelFormat::I420, PictureFormat::Rgb24) => {
                        let (luma_len, chroma_len) = i420_plane_lens(width, height);
                        let (y, chroma) = payload.split_at(luma_len);
                        let (u, v) = chroma.split_at(chroma_len);
                        convert::planar_to_rgb(
                            [y, u, v],
                            width,
                            height,
                            ChromaSubsampling::Yuv420,
                            ColourRange::Limited,
                            out,
                        )
                    }
                    _ => {
                        out.reshape(width, height, target)?;
                        out.data_mut().copy_from_slice(payload);
                        Ok(())
                    }
                }
            }
            PixelFormat::H264 => {
                if target == PictureFormat::I420 {
                    self.h264.decode_into(payload, width, height, out)
                } else {
                    self.h264
                        .decode_into(payload, width, height, &mut self.yuv)?;
                    convert::convert_into(&self.yuv, target, out)
                }
            }
            PixelFormat::Jpeg => {
                let rgb = if target == PictureFormat::Rgb24 {
                    &mut *out
                } else {
                    &mut self.rgb
                };
                decode_jpeg_into(payload, rgb)?;
                if (rgb.width(), rgb.height()) != (width, height) {
                    return Err(MediaError::SizeMismatch {
                        format,
                        width,
                        height,
                        actual_width: rgb.width(),
                        actual_height: rgb.height(),
                    });
                }
                if target == PictureFormat::I420 {
                    convert::convert_into(&self.rgb, PictureFormat::I420, out)?;
                }
                Ok(())
            }
        }
    }

    /// As [`Decoder::decode_into`], but a raw payload already in the
    /// `target` layout becomes `out` itself, sharing the received bytes
    /// instead of copying them (megabytes per frame at raw HD sizes).
    pub fn decode_bytes_into(
        &mut self,
        picture: &OwnedEncodedPicture,
        target: PictureFormat,
        out: &mut Picture,
    ) -> Result<(), MediaError> {
        let (format, width, height) = (picture.format, picture.width, picture.height);
        if format != target.pixel_format() {
            return self.decode_into(picture.borrowed(), target, out);
        }
        check_announced_size(width, height)?;
        check_raw_payload(format, width, height, picture.payload.len())?;
        *out = Picture::from_shared(width, height, target, picture.payload.clone())?;
        Ok(())
    }

    /// [`Decoder::decode_into`] into a new picture.
    pub fn decode(
        &mut self,
        picture: EncodedPicture<'_>,
        target: PictureFormat,
    ) -> Result<Picture, MediaError> {
        let mut decoded = Picture::empty(target);
        self.decode_into(picture, target, &mut decoded)?;
        Ok(decoded)
    }
}

/// A raw payload must be exactly the size its format and dimensions imply.
fn check_raw_payload(
    format: PixelFormat,
    width: u32,
    height: u32,
    actual: usize,
) -> Result<(), MediaError> {
    let expected = format.raw_len(width, height).unwrap_or(usize::MAX);
    if actual != expected {
        return Err(MediaError::PayloadLength {
            format,
            width,
            height,
            expected,
            actual,
        });
    }
    Ok(())
}

fn check_announced_size(width: u32, height: u32) -> Result<(), MediaError> {
    if width == 0 || height == 0 || width > MAX_WIDTH || height > MAX_HEIGHT {
        return Err(MediaError::UnsupportedFrameSize {
            width,
            height,
            problem: format!("each side must be between 1 and {MAX_WIDTH}x{MAX_HEIGHT}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::media::pattern::{read_frame_number, test_pattern};

    fn frame_of(picture: Picture) -> CapturedFrame {
        CapturedFrame {
            captured_at: Instant::now(),
            sequence: 0,
            content: FrameContent::Picture(picture),
        }
    }

    #[test]
    fn raw_rgb_borrows_and_round_trips_exactly() {
        let picture = test_pattern(77, 64, 48).unwrap();
        let frame = frame_of(picture.clone());
        let mut encoder = Encoder::new();
        let encoded = encoder
            .encode(&frame, PixelFormat::Rgb24, Quality::default())
            .unwrap();
        assert_eq!((encoded.width, encoded.height), (64, 48));
        assert_eq!(encoded.payload, picture.data());
        let decoded = Decoder::new()
            .decode(
                EncodedPicture::new(PixelFormat::Rgb24, 64, 48, encoded.payload),
                PictureFormat::Rgb24,
            )
            .unwrap();
        assert_eq!(decoded, picture);
    }

    #[test]
    fn raw_frames_move_into_bytes_and_back_without_copies() {
        let picture = test_pattern(5, 64, 48).unwrap();
        let sent = picture.clone();
        let pixels = sent.data().as_ptr();
        let mut encoder = Encoder::new();
        let owned = encoder
            .encode_to_bytes(frame_of(sent), PixelFormat::Rgb24, Quality::default())
            .unwrap()
            .unwrap();
        assert_eq!(owned.payload.as_ptr(), pixels, "moved, not copied");
        let mut shown = Picture::empty(PictureFormat::Rgb24);
        let mut decoder = Decoder::new();
        decoder
            .decode_bytes_into(&owned, PictureFormat::Rgb24, &mut shown)
            .unwrap();
        assert_eq!(shown.data().as_ptr(), pixels, "shared, not copied");
        assert_eq!(shown, picture);
        // A wrong length is still refused, and other layouts still convert.
        let short = OwnedEncodedPicture {
            payload: owned.payload.slice(1..),
            ..owned.clone()
        };
        assert!(decoder
            .decode_bytes_into(&short, PictureFormat::Rgb24, &mut shown)
            .is_err());
        let i420 = encoder
            .encode_to_bytes(frame_of(picture), PixelFormat::I420, Quality::default())
            .unwrap()
            .unwrap();
        assert_eq!(i420.payload.len(), 64 * 48 * 3 / 2);
        decoder
            .decode_bytes_into(&i420, PictureFormat::Rgb24, &mut shown)
            .unwrap();
        assert_eq!(shown.data().len(), 64 * 48 * 3);
    }

    #[test]
    fn camera_jpeg_passes_through_untouched() {
        let picture = test_pattern(3, 64, 48).unwrap();
        let mut encoder = Encoder::new();
        let jpeg = encoder
            .encode(&frame_of(picture), PixelFormat::Jpeg, Quality::default())
            .unwrap()
            .payload
            .to_vec();
        let camera_frame = CapturedFrame {
            captured_at: Instant::now(),
            sequence: 0,
            content: FrameContent::Jpeg(camera_jpeg(jpeg.clone()).unwrap()),
        };
        let encoded = encoder
            .encode(&camera_frame, PixelFormat::Jpeg, Quality::default())
            .unwrap();
        assert_eq!(encoded.payload.as_ptr(), jpeg_ptr(&camera_frame));
        assert_eq!(encoded.payload, jpeg.as_slice());
        // And a raw peer gets it decoded.
        let raw = encoder
            .encode(&camera_frame, PixelFormat::I420, Quality::default())
            .unwrap();
        assert_eq!(
            raw.payload.len(),
            PixelFormat::I420.raw_len(64, 48).unwrap()
        );
        let decoded = Decoder::new()
            .decode(
                EncodedPicture::new(PixelFormat::I420, 64, 48, raw.payload),
                PictureFormat::Rgb24,
            )
            .unwrap();
        assert_eq!(read_frame_number(&decoded), Some(3));
    }

    fn jpeg_ptr(frame: &CapturedFrame) -> *const u8 {
        match &frame.content {
            FrameContent::Jpeg(jpeg) => jpeg.data.as_ptr(),
            FrameContent::Picture(_) => std::ptr::null(),
        }
    }

    #[test]
    fn wrong_raw_length_is_rejected() {
        let error = Decoder::new()
            .decode(
                EncodedPicture::new(PixelFormat::Rgb24, 4, 4, &[0; 47]),
                PictureFormat::Rgb24,
            )
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("must be 48 bytes but the payload has 47"),
            "{error}"
        );
        let error = Decoder::new()
            .decode(
                EncodedPicture::new(PixelFormat::I420, 3, 3, &[0; 18]),
                PictureFormat::I420,
            )
            .unwrap_err();
        assert!(matches!(
            error,
            MediaError::PayloadLength {
                expected: 17,
                actual: 18,
                ..
            }
        ));
        let error = Decoder::new()
            .decode(
                EncodedPicture::new(PixelFormat::Rgb24, 5000, 4, &[]),
                PictureFormat::Rgb24,
            )
            .unwrap_err();
        assert!(
            matches!(error, MediaError::UnsupportedFrameSize { .. }),
            "{error}"
        );
    }

    #[test]
    fn corrupt_and_mismatched_jpeg_are_rejected() {
        let mut decoder = Decoder::new();
        for garbage in [
            &b""[..],
            b"not a jpeg at all",
            &[0xFF, 0xD8, 0xFF, 0xC0, 0, 0],
        ] {
            let error = decoder.decode(
                EncodedPicture::new(PixelFormat::Jpeg, 64, 48, garbage),
                PictureFormat::Rgb24,
            );
            assert!(
                matches!(error, Err(MediaError::CorruptJpeg { .. })),
                "{error:?}"
            );
        }
        let mut encoder = Encoder::new();
        let jpeg = encoder
            .encode(
                &frame_of(test_pattern(1, 64, 48).unwrap()),
                PixelFormat::Jpeg,
                Quality::default(),
            )
            .unwrap()
            .payload
            .to_vec();
        let truncated = &jpeg[..jpeg.len() / 2];
        let error = decoder.decode(
            EncodedPicture::new(PixelFormat::Jpeg, 64, 48, truncated),
            PictureFormat::Rgb24,
        );
        assert!(
            matches!(error, Err(MediaError::CorruptJpeg { .. })),
            "{error:?}"
        );
        let error = decoder.decode(
            EncodedPicture::new(PixelFormat::Jpeg, 32, 48, &jpeg),
            PictureFormat::Rgb24,
        );
        assert!(
            matches!(
                error,
                Err(MediaError::SizeMismatch {
                    actual_width: 64,
                    ..
                })
            ),
            "{error:?}"
        );
    }
}
