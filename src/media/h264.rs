//! H.264: the codec that lets a 720p call fit a home uplink.
//!
//! Why it is its own file: unlike raw and JPEG, H.264 is inter-coded. A
//! frame may refer to the ones before it, so the encoder and decoder keep
//! state across frames, a lost frame spoils every frame after it until the
//! next keyframe (IDR), and the payload comes from a C library (Cisco's
//! OpenH264) that we must not hand anything we have not checked.
//!
//! - [`H264Encoder`] turns I420 pictures into Annex B access units at a
//!   target bitrate the call's rate control sets, with a keyframe every
//!   [`KEYFRAME_INTERVAL`] and on request.
//! - [`H264Decoder`] checks each payload (only the NAL unit types of
//!   Constrained Baseline, a sequence parameter set whose picture size is the
//!   one announced beside it, at most 16 reference frames) before OpenH264
//!   sees it, so a hostile stream cannot make the decoder allocate for a
//!   picture larger than the receiver's limits. After a gap it waits for the
//!   next keyframe ([`MediaError::AwaitingKeyframe`]) instead of showing
//!   garbage.

use std::time::Duration;

use openh264::decoder::{Decoder as OpenH264Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder as OpenH264Encoder, EncoderConfig, FrameRate, FrameType,
    IntraFramePeriod, Profile, RateControlMode, UsageType, VuiConfig,
};
use openh264::formats::{YUVSlices, YUVSource};
use openh264::{OpenH264API, Timestamp};

use super::error::MediaError;
use super::picture::{Picture, PictureFormat};

/// The longest a stream goes without a keyframe even when nobody asks for
/// one: what a decoder that missed the start (a recording begun late, a
/// frame lost to a bug) waits at worst. Each keyframe of a 720p call is
/// about 30 KB, 160 ms of a 1.5 Mbit/s link, so they are not made often.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_secs(10);

/// The smallest side OpenH264 encodes reliably, and the smallest vchat
/// sends as H.264: one macroblock.
pub const MIN_H264_SIDE: u32 = 16;

/// The bitrate a call starts at before rate control has measured the link:
/// enough for 640x480 at 30 fps to look good, little enough that a 2 Mbit/s
/// link is not flooded in the first second.
pub const START_BITRATE_BPS: u32 = 800_000;

/// Encodes pictures as H.264 Constrained Baseline, one access unit per picture.
pub struct H264Encoder {
    /// Built at the first picture (and again when the size or the frame
    /// rate changes), since OpenH264 needs both at initialisation.
    encoder: Option<OpenH264Encoder>,
    /// Size and frame rate the current encoder was built for.
    built_for: Option<(u32, u32, u32)>,
    /// Bitrate the current encoder aims at (set at build, then at run time).
    applied_bitrate: u32,
    bitrate_bps: u32,
    frame_rate: u32,
    keyframe_requested: bool,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("built_for", &self.built_for)
            .field("bitrate_bps", &self.bitrate_bps)
            .field("frame_rate", &self.frame_rate)
            .finish_non_exhaustive()
    }
}

/// What kind of access unit the encoder made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H264Frame {
    /// Decodable on its own: SPS, PPS and an IDR slice.
    Keyframe,
    /// Refers to the frames before it.
    Delta,
    /// The encoder made nothing of this picture (its own rate control).
    Skipped,
}

impl Default for H264Encoder {
    fn default() -> Self {
        H264Encoder::new()
    }
}

impl H264Encoder {
    /// An encoder at [`START_BITRATE_BPS`] and 30 frames per second.
    pub fn new() -> Self {
        H264Encoder {
            encoder: None,
            built_for: None,
            applied_bitrate: 0,
            bitrate_bps: START_BITRATE_BPS,
            frame_rate: 30,
            keyframe_requested: false,
        }
    }

    /// The bitrate the encoder aims at from the next picture on.
    pub fn set_bitrate(&mut self, bps: u32) {
        self.bitrate_bps = bps.max(1);
    }

    /// The bitrate the encoder aims at.
    pub fn bitrate(&self) -> u32 {
        self.bitrate_bps
    }

    /// The frame rate pictures come at (what the rate control divides the
    /// bitrate by).
    pub fn set_frame_rate(&mut self, fps: u32) {
        self.frame_rate = fps.clamp(1, 120);
    }

    /// The next picture becomes a keyframe (a decoder that lost the thread,
    /// a new link).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Encodes an I420 `picture` into `out` (cleared first). `time` is the
    /// picture's capture time on any steady clock. Odd sizes lose their last
    /// column or row (H.264's 4:2:0 needs even sizes); the size encoded is
    /// returned with the kind of frame made.
    pub fn encode(
        &mut self,
        picture: &Picture,
        time: Duration,
        out: &mut Vec<u8>,
    ) -> Result<(H264Frame, u32, u32), MediaError> {
        out.clear();
        let (y, u, v) = picture
            .i420_planes()
            .ok_or_else(|| MediaError::H264Encode {
                reason: "the picture is not I420".into(),
            })?;
        let (full_width, full_height) = (picture.width(), picture.height());
        let (width, height) = (full_width & !1, full_height & !1);
        if width < MIN_H264_SIDE || height < MIN_H264_SIDE {
            return Err(MediaError::UnsupportedFrameSize {
                width: full_width,
                height: full_height,
                problem: format!("H.264 needs at least {MIN_H264_SIDE}x{MIN_H264_SIDE}"),
            });
        }
        let shape = (width, height, self.frame_rate);
        // A new size or frame rate needs a new encoder (and so a keyframe);
        // a new bitrate does not.
        let encoder = match &mut self.encoder {
            Some(encoder) if self.built_for == Some(shape) => {
                if self.applied_bitrate != self.bitrate_bps {
                    vchat_ffi::set_h264_bitrate(encoder, self.applied_bitrate, self.bitrate_bps)
                        .map_err(|reason| MediaError::H264Encode { reason })?;
                    self.applied_bitrate = self.bitrate_bps;
                }
                encoder
            }
            slot => {
                let encoder = slot.insert(build_encoder(
                    width,
                    height,
                    self.frame_rate,
                    self.bitrate_bps,
                )?);
                self.built_for = Some(shape);
                self.applied_bitrate = self.bitrate_bps;
                encoder
            }
        };
        if std::mem::take(&mut self.keyframe_requested) {
            encoder.force_intra_frame();
        }
        // The planes of the top-left even-sized part of the picture.
        let chroma_stride = full_width.div_ceil(2) as usize;
        let (w, h) = (width as usize, height as usize);
        let source = YUVSlices::new(
            (
                &y[..full_width as usize * h],
                &u[..chroma_stride * (h / 2)],
                &v[..chroma_stride * (h / 2)],
            ),
            (w, h),
            (full_width as usize, chroma_stride, chroma_stride),
        );
        let millis = u64::try_from(time.as_millis()).unwrap_or(u64::MAX) % (1 << 62);
        let stream = match encoder.encode_at(&source, Timestamp::from_millis(millis)) {
            Ok(stream) => stream,
            Err(e) => {
                // Built but perhaps never initialised: start afresh.
                self.encoder = None;
                self.built_for = None;
                return Err(MediaError::H264Encode {
                    reason: e.to_string(),
                });
            }
        };
        let kind = match stream.frame_type() {
            FrameType::IDR | FrameType::I => H264Frame::Keyframe,
            FrameType::P | FrameType::IPMixed => H264Frame::Delta,
            FrameType::Skip => H264Frame::Skipped,
            FrameType::Invalid => {
                return Err(MediaError::H264Encode {
                    reason: "OpenH264 reported an invalid frame".into(),
                })
            }
        };
        stream.write_vec(out);
        if out.is_empty() && kind != H264Frame::Skipped {
            return Err(MediaError::H264Encode {
                reason: "OpenH264 produced no bytes".into(),
            });
        }
        Ok((kind, width, height))
    }
}

/// An OpenH264 encoder for `width` x `height` at `frame_rate`, aiming at
/// `bitrate` bits per second. It is initialised at its first picture; the
/// bitrate may change from the second on.
fn build_encoder(
    width: u32,
    height: u32,
    frame_rate: u32,
    bitrate: u32,
) -> Result<OpenH264Encoder, MediaError> {
    let frames_between_keyframes = (KEYFRAME_INTERVAL.as_secs() as u32).saturating_mul(frame_rate);
    let config = EncoderConfig::new()
        .usage_type(UsageType::CameraVideoRealTime)
        .profile(Profile::Baseline)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(bitrate))
        .max_frame_rate(FrameRate::from_hz(frame_rate as f32))
        // OpenH264 holds its bitrate only if it may skip a picture (after
        // a keyframe, say); a skipped picture is never coded, so the
        // decoder sees no gap. vchat also skips before encoding when the
        // link is busy.
        .skip_frames(true)
        // A cut in the picture is not worth a 30 KB keyframe mid-call.
        .scene_change_detect(false)
        .complexity(Complexity::Low)
        .intra_frame_period(IntraFramePeriod::from_num_frames(frames_between_keyframes))
        .vui(VuiConfig::bt601())
        .num_threads(1)
        .debug(false);
    let mut encoder = OpenH264Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| MediaError::H264Encode {
            reason: format!("cannot start the encoder for {width}x{height}: {e}"),
        })?;
    // A new encoder starts with a keyframe anyway; make it explicit.
    encoder.force_intra_frame();
    Ok(encoder)
}

/// What the checks before decoding found in an access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessUnit {
    /// It holds an IDR slice (and so, by PROTOCOL.md 5.3.4, its SPS and PPS).
    pub keyframe: bool,
}

/// Decodes H.264 payloads into I420 pictures, checking each before OpenH264 sees it.
pub struct H264Decoder {
    decoder: Option<OpenH264Decoder>,
    /// Nothing can be decoded until the next keyframe: at the start and
    /// after frames were lost.
    awaiting_keyframe: bool,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder")
            .field("awaiting_keyframe", &self.awaiting_keyframe)
            .finish_non_exhaustive()
    }
}

impl Default for H264Decoder {
    fn default() -> Self {
        H264Decoder::new()
    }
}

impl H264Decoder {
    pub fn new() -> Self {
        H264Decoder {
            decoder: None,
            awaiting_keyframe: true,
        }
    }

    /// Frames were lost before the next one: wait for a keyframe.
    pub fn lost_frames(&mut self) {
        self.awaiting_keyframe = true;
    }

    /// Whether the decoder waits for a keyframe.
    pub fn awaiting_keyframe(&self) -> bool {
        self.awaiting_keyframe
    }

    /// Decodes one access unit announced as `width` x `height` into `out`
    /// (I420, reusing its allocation).
    pub fn decode_into(
        &mut self,
        payload: &[u8],
        width: u32,
        height: u32,
        out: &mut Picture,
    ) -> Result<(), MediaError> {
        let unit = check_access_unit(payload, width, height)?;
        if self.awaiting_keyframe {
            if !unit.keyframe {
                return Err(MediaError::AwaitingKeyframe);
            }
            // A fresh decoder: nothing it knew before the gap is trusted.
            self.decoder = None;
        }
        let decoder = match &mut self.decoder {
            Some(decoder) => decoder,
            empty => empty.insert(
                OpenH264Decoder::with_api_config(
                    OpenH264API::from_source(),
                    DecoderConfig::new().debug(false),
                )
                .map_err(|e| MediaError::CorruptH264 {
                    reason: format!("cannot start the decoder: {e}"),
                })?,
            ),
        };
        let decoded = match decoder.decode(payload) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => {
                return Err(MediaError::CorruptH264 {
                    reason: "the payload holds no complete picture".into(),
                })
            }
            Err(e) => {
                // The stream cannot be trusted from here on.
                self.decoder = None;
                self.awaiting_keyframe = true;
                return Err(MediaError::CorruptH264 {
                    reason: e.to_string(),
                });
            }
        };
        let (actual_width, actual_height) = decoded.dimensions();
        if (actual_width, actual_height) != (width as usize, height as usize) {
            return Err(MediaError::SizeMismatch {
                format: crate::protocol::PixelFormat::H264,
                width,
                height,
                actual_width: actual_width as u32,
                actual_height: actual_height as u32,
            });
        }
        let (y_stride, u_stride, v_stride) = decoded.strides();
        out.reshape(width, height, PictureFormat::I420)?;
        let (out_y, out_u, out_v) =
            out.i420_planes_mut()
                .ok_or_else(|| MediaError::Conversion {
                    step: "H.264 output",
                    reason: "not I420".into(),
                })?;
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        copy_plane(decoded.y(), y_stride, out_y, w, h)?;
        copy_plane(decoded.u(), u_stride, out_u, cw, ch)?;
        copy_plane(decoded.v(), v_stride, out_v, cw, ch)?;
        self.awaiting_keyframe = false;
        Ok(())
    }
}

/// Copies a `width` x `height` plane out of rows `stride` bytes apart.
fn copy_plane(
    source: &[u8],
    stride: usize,
    target: &mut [u8],
    width: usize,
    height: usize,
) -> Result<(), MediaError> {
    if width == 0 {
        return Ok(());
    }
    let short = || MediaError::CorruptH264 {
        reason: "the decoder's picture is smaller than its size".into(),
    };
    for (row, target_row) in target.chunks_exact_mut(width).take(height).enumerate() {
        let start = row.checked_mul(stride).ok_or_else(short)?;
        let source_row = source.get(start..start + width).ok_or_else(short)?;
        target_row.copy_from_slice(source_row);
    }
    Ok(())
}

/// The NAL unit types a Constrained Baseline access unit may hold
/// (PROTOCOL.md 5.3.4): non-IDR slice, IDR slice, SEI, SPS, PPS, access
/// unit delimiter, end of sequence, end of stream, filler.
const ALLOWED_NAL_TYPES: [u8; 9] = [1, 5, 6, 7, 8, 9, 10, 11, 12];
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
/// H.264's own limit on reference frames (and so on the decoder's memory).
const MAX_REF_FRAMES: u32 = 16;

/// Checks an access unit before any decoder sees it: Annex B framing, only
/// the NAL unit types of Constrained Baseline, and each SPS describes a
/// Constrained Baseline stream of exactly `width` x `height` with at most
/// 16 reference frames.
pub fn check_access_unit(
    payload: &[u8],
    width: u32,
    height: u32,
) -> Result<AccessUnit, MediaError> {
    let corrupt = |reason: String| MediaError::CorruptH264 { reason };
    if !(payload.starts_with(&[0, 0, 1]) || payload.starts_with(&[0, 0, 0, 1])) {
        return Err(corrupt(
            "the payload does not start with an Annex B start code (00 00 01)".into(),
        ));
    }
    let mut keyframe = false;
    let mut slices = 0usize;
    for nal in nal_payloads(payload) {
        let Some(&header) = nal.first() else {
            return Err(corrupt("an empty NAL unit".into()));
        };
        if header & 0x80 != 0 {
            return Err(corrupt("a NAL unit with forbidden_zero_bit set".into()));
        }
        let kind = header & 0x1F;
        if !ALLOWED_NAL_TYPES.contains(&kind) {
            return Err(corrupt(format!(
                "NAL unit type {kind} is not part of Constrained Baseline"
            )));
        }
        match kind {
            NAL_IDR => {
                keyframe = true;
                slices += 1;
            }
            1 => slices += 1,
            NAL_SPS => check_sps(&nal[1..], width, height)?,
            _ => {}
        }
    }
    if slices == 0 {
        return Err(corrupt("the access unit holds no slice".into()));
    }
    Ok(AccessUnit { keyframe })
}

/// The NAL units of an Annex B stream, without their start codes (trailing
/// zero bytes belong to the next start code and are dropped). Walks the
/// payload once, allocating nothing: this runs on every received frame.
fn nal_payloads(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    const START_CODE: [u8; 3] = [0, 0, 1];
    let find = |data: &[u8]| data.windows(3).position(|w| w == START_CODE);
    let mut rest = stream;
    std::iter::from_fn(move || {
        let payload = &rest[find(rest)? + START_CODE.len()..];
        let end = find(payload).unwrap_or(payload.len());
        rest = &payload[end..];
        let mut nal = &payload[..end];
        while let [before @ .., 0] = nal {
            nal = before;
        }
        Some(nal)
    })
}

/// Checks a sequence parameter set (the NAL unit without its header byte).
fn check_sps(rbsp_with_emulation: &[u8], width: u32, height: u32) -> Result<(), MediaError> {
    let corrupt = |reason: String| MediaError::CorruptH264 { reason };
    let rbsp = remove_emulation_prevention(rbsp_with_emulation);
    let mut bits = BitReader::new(&rbsp);
    let truncated = |_| corrupt("a truncated sequence parameter set".into());
    let profile = bits.bits(8).map_err(truncated)?;
    let constraints = bits.bits(8).map_err(truncated)?;
    let _level = bits.bits(8).map_err(truncated)?;
    // Constrained Baseline: profile_idc 66 (Baseline), or another profile
    // with constraint_set1_flag, which promises a Constrained Baseline decoder
    // can decode it; either way none of the High profiles' extra syntax.
    let constrained = constraints & 0x40 != 0;
    if !(profile == 66 || (constrained && (profile == 77 || profile == 88))) {
        return Err(corrupt(format!(
            "profile_idc {profile} is not Constrained Baseline (66, or 77/88 with constraint_set1_flag)"
        )));
    }
    let _sps_id = bits.ue().map_err(truncated)?;
    let _log2_max_frame_num = bits.ue().map_err(truncated)?;
    match bits.ue().map_err(truncated)? {
        0 => {
            bits.ue().map_err(truncated)?;
        }
        1 => {
            bits.bits(1).map_err(truncated)?;
            bits.ue().map_err(truncated)?;
            bits.ue().map_err(truncated)?;
            let cycle = bits.ue().map_err(truncated)?;
            if cycle > 255 {
                return Err(corrupt(format!(
                    "num_ref_frames_in_pic_order_cnt_cycle {cycle} is above 255"
                )));
            }
            for _ in 0..cycle {
                bits.ue().map_err(truncated)?;
            }
        }
        2 => {}
        other => return Err(corrupt(format!("pic_order_cnt_type {other} is above 2"))),
    }
    let ref_frames = bits.ue().map_err(truncated)?;
    if ref_frames > MAX_REF_FRAMES {
        return Err(corrupt(format!(
            "max_num_ref_frames {ref_frames} is above {MAX_REF_FRAMES}"
        )));
    }
    bits.bits(1).map_err(truncated)?;
    let width_mbs = u64::from(bits.ue().map_err(truncated)?) + 1;
    let height_units = u64::from(bits.ue().map_err(truncated)?) + 1;
    if bits.bits(1).map_err(truncated)? != 1 {
        return Err(corrupt(
            "interlaced coding (frame_mbs_only_flag 0) is not Constrained Baseline".into(),
        ));
    }
    bits.bits(1).map_err(truncated)?;
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if bits.bits(1).map_err(truncated)? == 1 {
        let mut offset = || bits.ue().map(u64::from).map_err(truncated);
        crop_x = offset()? + offset()?;
        crop_y = offset()? + offset()?;
    }
    // 4:2:0 frames crop in units of 2 pixels.
    let coded_width = (width_mbs * 16).saturating_sub(2 * crop_x);
    let coded_height = (height_units * 16).saturating_sub(2 * crop_y);
    if (coded_width, coded_height) != (u64::from(width), u64::from(height)) {
        return Err(MediaError::SizeMismatch {
            format: crate::protocol::PixelFormat::H264,
            width,
            height,
            actual_width: u32::try_from(coded_width).unwrap_or(u32::MAX),
            actual_height: u32::try_from(coded_height).unwrap_or(u32::MAX),
        });
    }
    Ok(())
}

/// The RBSP of a NAL unit: every `00 00 03` loses its `03`.
fn remove_emulation_prevention(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &byte in nal {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

/// Reads bits, most significant first, and Exp-Golomb codes.
struct BitReader<'a> {
    data: &'a [u8],
    position: usize,
}

/// The data ended in the middle of a field.
#[derive(Debug)]
struct Truncated;

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, position: 0 }
    }

    fn bit(&mut self) -> Result<u32, Truncated> {
        let byte = self.data.get(self.position / 8).ok_or(Truncated)?;
        let bit = (byte >> (7 - self.position % 8)) & 1;
        self.position += 1;
        Ok(u32::from(bit))
    }

    fn bits(&mut self, count: u32) -> Result<u32, Truncated> {
        (0..count).try_fold(0, |value, _| Ok((value << 1) | self.bit()?))
    }

    /// An unsigned Exp-Golomb code of at most 32 bits.
    fn ue(&mut self) -> Result<u32, Truncated> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(Truncated);
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::convert;
    use crate::media::pattern::{read_frame_number, test_pattern};

    fn i420_pattern(number: u64, width: u32, height: u32) -> Picture {
        let rgb = test_pattern(number, width, height).unwrap();
        let mut i420 = Picture::empty(PictureFormat::I420);
        convert::convert_into(&rgb, PictureFormat::I420, &mut i420).unwrap();
        i420
    }

    fn encode_all(encoder: &mut H264Encoder, count: u64, width: u32, height: u32) -> Vec<Vec<u8>> {
        (0..count)
            .map(|n| {
                let mut out = Vec::new();
                let picture = i420_pattern(n, width, height);
                encoder
                    .encode(&picture, Duration::from_millis(n * 33), &mut out)
                    .unwrap();
                out
            })
            .collect()
    }

    #[test]
    fn a_stream_round_trips_and_starts_with_a_keyframe() {
        let mut encoder = H264Encoder::new();
        encoder.set_bitrate(2_000_000);
        let units = encode_all(&mut encoder, 10, 320, 240);
        assert!(check_access_unit(&units[0], 320, 240).unwrap().keyframe);
        assert!(!check_access_unit(&units[1], 320, 240).unwrap().keyframe);
        let mut decoder = H264Decoder::new();
        let mut picture = Picture::empty(PictureFormat::I420);
        for (n, unit) in units.iter().enumerate() {
            decoder.decode_into(unit, 320, 240, &mut picture).unwrap();
            let mut rgb = Picture::empty(PictureFormat::Rgb24);
            convert::convert_into(&picture, PictureFormat::Rgb24, &mut rgb).unwrap();
            assert_eq!(read_frame_number(&rgb), Some(n as u64));
        }
    }

    #[test]
    fn a_decoder_that_lost_frames_waits_for_a_requested_keyframe() {
        let mut encoder = H264Encoder::new();
        let units = encode_all(&mut encoder, 3, 64, 48);
        let mut decoder = H264Decoder::new();
        let mut picture = Picture::empty(PictureFormat::I420);
        // Joining in the middle: nothing until a keyframe.
        assert!(matches!(
            decoder.decode_into(&units[1], 64, 48, &mut picture),
            Err(MediaError::AwaitingKeyframe)
        ));
        decoder
            .decode_into(&units[0], 64, 48, &mut picture)
            .unwrap();
        decoder.lost_frames();
        assert!(matches!(
            decoder.decode_into(&units[2], 64, 48, &mut picture),
            Err(MediaError::AwaitingKeyframe)
        ));
        encoder.request_keyframe();
        let mut key = Vec::new();
        let (kind, _, _) = encoder
            .encode(
                &i420_pattern(9, 64, 48),
                Duration::from_millis(300),
                &mut key,
            )
            .unwrap();
        assert_eq!(kind, H264Frame::Keyframe);
        decoder.decode_into(&key, 64, 48, &mut picture).unwrap();
        assert!(!decoder.awaiting_keyframe());
    }

    #[test]
    fn the_bitrate_moves_up_and_down_without_a_keyframe() {
        let mut encoder = H264Encoder::new();
        let mut out = Vec::new();
        let mut bytes_at = |encoder: &mut H264Encoder, bitrate: u32, from: u64| {
            encoder.set_bitrate(bitrate);
            let mut total = 0;
            for n in from..from + 30 {
                // Noise, which no bitrate codes perfectly.
                let mut picture = i420_pattern(n, 320, 240);
                let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for byte in picture.data_mut() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    *byte = byte.wrapping_add((state % 32) as u8);
                }
                let (kind, _, _) = encoder
                    .encode(&picture, Duration::from_millis(n * 33), &mut out)
                    .unwrap();
                assert_eq!(kind == H264Frame::Keyframe, n == 0, "frame {n}");
                total += out.len();
            }
            total
        };
        let low = bytes_at(&mut encoder, 100_000, 0);
        let high = bytes_at(&mut encoder, 3_000_000, 30);
        let low_again = bytes_at(&mut encoder, 100_000, 60);
        assert!(high > 2 * low_again, "{low} {high} {low_again}");
    }

    #[test]
    fn odd_sizes_are_encoded_one_pixel_smaller() {
        let mut encoder = H264Encoder::new();
        let mut out = Vec::new();
        let (_, width, height) = encoder
            .encode(&i420_pattern(0, 639, 479), Duration::ZERO, &mut out)
            .unwrap();
        assert_eq!((width, height), (638, 478));
        let mut picture = Picture::empty(PictureFormat::I420);
        H264Decoder::new()
            .decode_into(&out, 638, 478, &mut picture)
            .unwrap();
        assert!(encoder
            .encode(&i420_pattern(0, 15, 40), Duration::ZERO, &mut out)
            .is_err());
    }

    #[test]
    fn payloads_are_checked_before_the_decoder_sees_them() {
        let mut encoder = H264Encoder::new();
        let key = encode_all(&mut encoder, 1, 64, 48).remove(0);
        // The announced size must be the SPS's.
        assert!(matches!(
            check_access_unit(&key, 64, 64),
            Err(MediaError::SizeMismatch {
                actual_width: 64,
                actual_height: 48,
                ..
            })
        ));
        let mut decoder = H264Decoder::new();
        let mut picture = Picture::empty(PictureFormat::I420);
        for bad in [
            &b""[..],
            b"not h264",
            &[0, 0, 1],
            &[0, 0, 1, 0x80],
            // Subset SPS (SVC/MVC) and data partitions are not Baseline.
            &[0, 0, 1, 15, 1, 2, 3],
            &[0, 0, 1, 2, 1, 2, 3],
            // A lone SPS: no slice.
            &[0, 0, 0, 1, 0x67, 66, 0xC0, 30],
        ] {
            let result = decoder.decode_into(bad, 64, 48, &mut picture);
            assert!(
                matches!(result, Err(MediaError::CorruptH264 { .. })),
                "{bad:?}: {result:?}"
            );
        }
        // A High profile SPS, and one claiming 17 reference frames.
        let mut high = key.clone();
        let sps = sps_offset(&high);
        high[sps] = 100;
        assert!(check_access_unit(&high, 64, 48).is_err());
        let truncated = &key[..sps + 3];
        assert!(check_access_unit(truncated, 64, 48).is_err());
        // Garbage after a valid header reaches OpenH264 and is refused there.
        let mut garbled = key.clone();
        let len = garbled.len();
        for byte in &mut garbled[len / 2..] {
            *byte = 0x5A;
        }
        let result = decoder.decode_into(&garbled, 64, 48, &mut picture);
        assert!(result.is_err(), "{result:?}");
    }

    /// Where the profile_idc byte of the first SPS is.
    fn sps_offset(unit: &[u8]) -> usize {
        let header = unit
            .windows(4)
            .position(|w| w[..3] == [0, 0, 1] && w[3] & 0x1F == NAL_SPS)
            .unwrap();
        header + 4
    }

    #[test]
    fn exp_golomb_and_emulation_prevention() {
        // 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3
        let mut bits = BitReader::new(&[0b1010_0110, 0b0100_0000]);
        assert_eq!(bits.ue().unwrap(), 0);
        assert_eq!(bits.ue().unwrap(), 1);
        assert_eq!(bits.ue().unwrap(), 2);
        assert_eq!(bits.ue().unwrap(), 3);
        assert!(BitReader::new(&[0, 0, 0, 0, 0]).ue().is_err());
        assert_eq!(
            remove_emulation_prevention(&[1, 0, 0, 3, 0, 0, 3, 1]),
            [1, 0, 0, 0, 0, 1]
        );
        let units: Vec<&[u8]> =
            nal_payloads(&[0, 0, 0, 1, 9, 8, 0, 0, 1, 7, 0, 0, 0, 1, 5]).collect();
        assert_eq!(units, [&[9u8, 8][..], &[7], &[5]]);
    }
}
