//! Cameras through nokhwa (V4L2 on Linux): listing, format choice, capture.
//!
//! nokhwa's `Camera` is not `Send` and its `frame()` blocks without a timeout,
//! so each open camera lives on its own thread:
//!
//! ```text
//!  camera thread:  open -> choose format -> loop { frame() -> newest-frame slot }   (stop flag)
//!  CameraSource::next_frame: wait on the slot (bounded) -> decode/convert/scale the newest frame
//! ```
//!
//! The slot is a [`Latest`], the same newest-only hand-off the call uses
//! between its stages. The thread only copies bytes into it, replacing a frame nobody took,
//! so the driver's buffers never back up and latency stays at one frame.
//! Decoding happens on the consumer's side and only for frames it takes.
//! Dropping the source sets the stop flag and waits (bounded) for the thread
//! to release the camera.
//!
//! Which format to ask for is [`choose_format`], a pure function so it can be
//! tested against the lists real cameras report.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
};
use nokhwa::Camera;

use super::codec::{camera_jpeg, decode_jpeg_into};
use super::convert::{self, Scaler};
use super::error::MediaError;
use super::latest::Latest;
use super::options::{Fps, Size};
use super::picture::{CapturedFrame, FrameContent, Picture, PictureFormat};
use super::source::FrameSource;

/// How long opening a camera may take before we give up: USB cameras take
/// about a second to start; ten means the driver is stuck.
const CAMERA_OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for one frame; at even 1 fps a working camera delivers well within this.
const CAMERA_FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// How long dropping a source waits for the camera thread to release the
/// device. A driver stuck in `frame()` is left to its thread, which releases
/// the camera when the driver returns, rather than hanging a hang-up.
const CAMERA_RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// The fourccs we ask nokhwa about; the ones we can decode are marked usable below.
const REQUESTABLE_FORMATS: &[FrameFormat] = &[
    FrameFormat::MJPEG,
    FrameFormat::YUYV,
    FrameFormat::NV12,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
    FrameFormat::GRAY,
];

/// How a camera encodes its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CameraEncoding {
    Mjpeg,
    Yuyv,
    Nv12,
    Rgb24,
    Bgr24,
    Gray,
}

impl CameraEncoding {
    /// Whether vchat can turn this encoding into pictures.
    pub fn is_usable(self) -> bool {
        matches!(
            self,
            CameraEncoding::Mjpeg
                | CameraEncoding::Yuyv
                | CameraEncoding::Nv12
                | CameraEncoding::Rgb24
        )
    }

    fn name(self) -> &'static str {
        match self {
            CameraEncoding::Mjpeg => "MJPEG",
            CameraEncoding::Yuyv => "YUYV",
            CameraEncoding::Nv12 => "NV12",
            CameraEncoding::Rgb24 => "RGB24",
            CameraEncoding::Bgr24 => "BGR24",
            CameraEncoding::Gray => "GRAY",
        }
    }

    fn from_nokhwa(format: FrameFormat) -> Self {
        match format {
            FrameFormat::MJPEG => CameraEncoding::Mjpeg,
            FrameFormat::YUYV => CameraEncoding::Yuyv,
            FrameFormat::NV12 => CameraEncoding::Nv12,
            FrameFormat::RAWRGB => CameraEncoding::Rgb24,
            FrameFormat::RAWBGR => CameraEncoding::Bgr24,
            FrameFormat::GRAY => CameraEncoding::Gray,
        }
    }
}

/// One capture mode a camera offers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraFormatInfo {
    pub width: u32,
    pub height: u32,
    /// Frames per second; fractional for NTSC-style rates such as 29.97.
    pub fps: f64,
    pub encoding: CameraEncoding,
}

impl fmt::Display for CameraFormatInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fps = format!("{:.2}", self.fps);
        let fps = fps.trim_end_matches('0').trim_end_matches('.');
        write!(
            f,
            "{} {}x{} at {fps} fps",
            self.encoding.name(),
            self.width,
            self.height
        )
    }
}

/// The format [`choose_format`] picked, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatChoice {
    /// Position in the list given to [`choose_format`].
    pub index: usize,
    pub format: CameraFormatInfo,
    /// Size exactly as asked and rate within 1% of it.
    pub exact: bool,
    /// A sentence for the log.
    pub reason: String,
}

/// Picks the camera format closest to `want` at `want_fps`, or `None` when the
/// camera offers nothing vchat can decode.
///
/// Closeness is a cost, lowest wins, adding:
/// - size: |log2(area ratio)| (1.5x when smaller than asked: upscaling loses
///   detail, downscaling does not) plus |log2(aspect ratio ratio)|;
/// - rate: log2(asked/offered) when the camera is slower than asked, and a
///   small penalty for being faster (frames we would drop);
/// - encoding: a tie-breaker, MJPEG first when `prefer_mjpeg` (frames can be
///   sent as they are), else uncompressed first (no decoding).
///
/// So a 1280x720 request at 30 fps takes MJPEG 1920x1080@30 (downscaled) over
/// YUYV 1280x720@10, and 29.97 fps counts as 30.
pub fn choose_format(
    available: &[CameraFormatInfo],
    want: Size,
    want_fps: Fps,
    prefer_mjpeg: bool,
) -> Option<FormatChoice> {
    let want_fps_f = f64::from(want_fps.get());
    let cost = |format: &CameraFormatInfo| {
        let want_area = f64::from(want.width()) * f64::from(want.height());
        let area = f64::from(format.width) * f64::from(format.height);
        let mut size_cost = (area / want_area).log2().abs();
        if area < want_area {
            size_cost *= 1.5;
        }
        let want_aspect = f64::from(want.width()) / f64::from(want.height());
        let aspect = f64::from(format.width) / f64::from(format.height);
        size_cost += (aspect / want_aspect).log2().abs();
        let rate_cost = if format.fps < want_fps_f * 0.99 {
            (want_fps_f / format.fps).log2()
        } else {
            0.05 * (format.fps / want_fps_f).log2().abs()
        };
        let encoding_cost = match (format.encoding, prefer_mjpeg) {
            (CameraEncoding::Mjpeg, true) => 0.0,
            (_, true) => 0.1,
            (CameraEncoding::Yuyv, false) => 0.0,
            (CameraEncoding::Nv12, false) => 0.02,
            (CameraEncoding::Rgb24, false) => 0.04,
            (_, false) => 0.1,
        };
        size_cost + rate_cost + encoding_cost
    };
    let (index, format) = available
        .iter()
        .enumerate()
        .filter(|(_, format)| {
            format.encoding.is_usable() && format.width > 0 && format.height > 0 && format.fps > 0.0
        })
        .min_by(|(_, a), (_, b)| cost(a).total_cmp(&cost(b)))?;
    let format = *format;
    let same_size = (format.width, format.height) == (want.width(), want.height());
    let same_rate = (format.fps - want_fps_f).abs() <= want_fps_f * 0.01;
    let exact = same_size && same_rate;
    let reason = if exact {
        format!("exact match: {format}")
    } else {
        let mut reason = format!("the camera has no {want} at {want_fps} fps; nearest is {format}");
        if !same_size {
            reason.push_str(&format!(", frames scaled to {want}"));
        }
        if format.fps < want_fps_f * 0.99 {
            reason.push_str(", at the camera's lower rate");
        }
        reason
    };
    Some(FormatChoice {
        index,
        format,
        exact,
        reason,
    })
}

/// A camera the system lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraSummary {
    /// The N of `--source camera:N` (on Linux, of /dev/videoN).
    pub index: u32,
    pub name: String,
    pub description: String,
}

/// The cameras the system lists (including nodes that turn out not to be cameras).
pub fn query_cameras() -> Result<Vec<CameraSummary>, MediaError> {
    let cameras = nokhwa::query(ApiBackend::Auto).map_err(|error| MediaError::CameraQuery {
        reason: error.to_string(),
    })?;
    let mut summaries: Vec<CameraSummary> = cameras
        .iter()
        .filter_map(|info| match info.index() {
            CameraIndex::Index(index) => Some(CameraSummary {
                index: *index,
                name: info.human_name(),
                description: info.description().to_owned(),
            }),
            CameraIndex::String(_) => None,
        })
        .collect();
    summaries.sort_by_key(|summary| summary.index);
    Ok(summaries)
}

/// "0 (Integrated Camera), 2 (USB Camera)" or "none", for error messages.
pub fn describe_available(cameras: &[CameraSummary]) -> String {
    if cameras.is_empty() {
        return "none".to_owned();
    }
    cameras
        .iter()
        .map(|camera| format!("{} ({})", camera.index, camera.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The error for a camera index the system does not list.
fn camera_not_found(index: u32, cameras: &[CameraSummary]) -> MediaError {
    if cameras.is_empty() {
        MediaError::NoCameras
    } else {
        MediaError::CameraNotFound {
            index,
            available: describe_available(cameras),
        }
    }
}

/// The formats a camera offers, opening it briefly.
pub fn camera_formats(index: u32) -> Result<Vec<CameraFormatInfo>, String> {
    let mut camera = open_nokhwa(index).map_err(|error| error.to_string())?;
    let formats = camera
        .compatible_camera_formats()
        .map_err(|error| error.to_string())?;
    Ok(formats.iter().map(format_info).collect())
}

/// `vchat cameras`: every camera and the formats it offers, or a clear "no cameras found".
pub fn print_cameras(out: &mut dyn Write) -> Result<(), MediaError> {
    let cameras = query_cameras()?;
    let mut text = String::new();
    if cameras.is_empty() {
        text.push_str(
            "no cameras found\n(vchat looks for Video4Linux devices /dev/video*: check that a \
             camera is connected and that you may open it, e.g. that you are in the `video` \
             group. Without a camera, use --source test or --source FILE.y4m.)\n",
        );
    }
    for camera in &cameras {
        text.push_str(&format!(
            "camera:{}  {}  ({})\n",
            camera.index, camera.name, camera.description
        ));
        match camera_formats(camera.index) {
            Ok(mut formats) => {
                formats.sort_by(|a, b| {
                    (a.encoding.name(), a.width, a.height)
                        .cmp(&(b.encoding.name(), b.width, b.height))
                        .then(b.fps.total_cmp(&a.fps))
                });
                if formats.is_empty() {
                    text.push_str("    (no formats reported)\n");
                }
                for format in formats {
                    let note = if format.encoding.is_usable() {
                        ""
                    } else {
                        "  (not usable by vchat)"
                    };
                    text.push_str(&format!("    {format}{note}\n"));
                }
            }
            Err(reason) => text.push_str(&format!(
                "    cannot open: {reason} (metadata nodes and cameras in use by another program \
                 cannot be opened)\n"
            )),
        }
    }
    out.write_all(text.as_bytes())
        .map_err(|source| MediaError::FileWrite {
            path: "standard output".into(),
            source,
        })
}

fn open_nokhwa(index: u32) -> Result<Camera, nokhwa::NokhwaError> {
    // `None` opens the device in its first usable mode; the real choice is
    // made afterwards from the full list with `set_camera_format`.
    Camera::new(
        CameraIndex::Index(index),
        RequestedFormat::with_formats(RequestedFormatType::None, REQUESTABLE_FORMATS),
    )
}

fn format_info(format: &CameraFormat) -> CameraFormatInfo {
    CameraFormatInfo {
        width: format.width(),
        height: format.height(),
        fps: f64::from(format.frame_rate()),
        encoding: CameraEncoding::from_nokhwa(format.format()),
    }
}

/// A frame as the camera thread copied it, not yet decoded.
struct RawFrame {
    data: Vec<u8>,
    width: u32,
    height: u32,
    encoding: CameraEncoding,
    captured_at: Instant,
    sequence: u64,
}

/// What the camera thread and the source share.
struct Shared {
    stop: AtomicBool,
    /// The newest frame nobody took yet; closed when the capture thread ends.
    newest: Latest<RawFrame>,
    /// A buffer handed back by the consumer, reused for the next copy.
    spare: Mutex<Option<Vec<u8>>>,
    /// Why capture stopped, set before `newest` is closed.
    failure: Mutex<Option<String>>,
}

/// Locks `mutex` even if the other side panicked while holding it: both
/// values it guards here (a spare buffer, a failure text) stay consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends on drop, so the source learns the thread ended even if it panicked.
struct NotifyOnDrop(mpsc::Sender<()>);

impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// What the camera thread reports once the camera is streaming.
struct Opened {
    choice: FormatChoice,
    name: String,
}

/// A camera as a [`FrameSource`] (see the module notes).
pub struct CameraSource {
    index: u32,
    want: Size,
    description: String,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    finished: mpsc::Receiver<()>,
    decoded: Picture,
    scaler: Scaler,
}

impl fmt::Debug for CameraSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CameraSource({})", self.description)
    }
}

impl CameraSource {
    /// Opens camera `index` in the format nearest `want` at `fps` (logged),
    /// and starts its capture thread.
    pub fn open(index: u32, want: Size, fps: Fps, prefer_mjpeg: bool) -> Result<Self, MediaError> {
        let cameras = query_cameras()?;
        if !cameras.iter().any(|camera| camera.index == index) {
            return Err(camera_not_found(index, &cameras));
        }
        let available = describe_available(&cameras);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            newest: Latest::new(),
            spare: Mutex::new(None),
            failure: Mutex::new(None),
        });
        let (opened_tx, opened_rx) = mpsc::sync_channel(1);
        let (finished_tx, finished) = mpsc::channel();
        let worker = {
            let shared = Arc::clone(&shared);
            let available_for_thread = available.clone();
            thread::Builder::new()
                .name(format!("vchat-camera-{index}"))
                .spawn(move || {
                    let _finished = NotifyOnDrop(finished_tx);
                    capture(
                        index,
                        want,
                        fps,
                        prefer_mjpeg,
                        &available_for_thread,
                        &shared,
                        opened_tx,
                    );
                })
                .map_err(|error| MediaError::CameraOpen {
                    index,
                    reason: format!("cannot start its thread: {error}"),
                    available: available.clone(),
                })?
        };
        let mut source = CameraSource {
            index,
            want,
            description: format!("camera {index}"),
            shared,
            worker: Some(worker),
            finished,
            decoded: Picture::empty(PictureFormat::Rgb24),
            scaler: Scaler::new(),
        };
        // On any error below, dropping `source` stops and releases the camera.
        let opened = match opened_rx.recv_timeout(CAMERA_OPEN_TIMEOUT) {
            Ok(Ok(opened)) => opened,
            Ok(Err(error)) => return Err(error),
            Err(RecvTimeoutError::Timeout) => {
                return Err(MediaError::CameraOpen {
                    index,
                    reason: format!(
                        "it did not start within {} s",
                        CAMERA_OPEN_TIMEOUT.as_secs()
                    ),
                    available,
                })
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(MediaError::CameraOpen {
                    index,
                    reason: "its capture thread ended unexpectedly".to_owned(),
                    available,
                })
            }
        };
        tracing::info!(camera = index, "camera format: {}", opened.choice.reason);
        source.description = format!("camera {index} ({}): {}", opened.name, opened.choice.format);
        Ok(source)
    }

    fn take_newest(&mut self) -> Result<RawFrame, MediaError> {
        let failed = |reason: String| MediaError::CameraFailed {
            index: self.index,
            reason,
        };
        let deadline = Instant::now() + CAMERA_FRAME_TIMEOUT;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(failed(format!(
                    "no frame for {} s",
                    CAMERA_FRAME_TIMEOUT.as_secs()
                )));
            }
            match self.shared.newest.take_blocking(deadline - now) {
                Some(Some(frame)) => return Ok(frame),
                // Woke without a frame: the deadline check above decides.
                Some(None) => {}
                None => {
                    let reason = lock(&self.shared.failure)
                        .clone()
                        .unwrap_or_else(|| "its capture thread has stopped".to_owned());
                    return Err(failed(reason));
                }
            }
        }
    }

    /// Turns the camera's bytes into a frame of the wanted size.
    fn convert(&mut self, raw: RawFrame) -> Result<CapturedFrame, MediaError> {
        let RawFrame {
            data,
            width,
            height,
            encoding,
            captured_at,
            sequence,
        } = raw;
        let same_size = (width, height) == (self.want.width(), self.want.height());
        let short = |needed: usize| MediaError::CameraFailed {
            index: self.index,
            reason: format!(
                "a {} {width}x{height} frame had {} bytes, fewer than the {needed} it needs",
                encoding.name(),
                data.len()
            ),
        };
        match encoding {
            CameraEncoding::Mjpeg if same_size => {
                // Pass-through: the encoder sends these bytes as they are.
                return Ok(CapturedFrame {
                    captured_at,
                    sequence,
                    content: FrameContent::Jpeg(camera_jpeg(data)?),
                });
            }
            CameraEncoding::Mjpeg => decode_jpeg_into(&data, &mut self.decoded)?,
            CameraEncoding::Yuyv => {
                let needed = width.div_ceil(2) as usize * 4 * height as usize;
                let bytes = data.get(..needed).ok_or_else(|| short(needed))?;
                convert::yuyv_to_i420(bytes, width, height, &mut self.decoded)?;
            }
            CameraEncoding::Nv12 => {
                let needed = PictureFormat::I420
                    .byte_len(width, height)
                    .unwrap_or(usize::MAX);
                let bytes = data.get(..needed).ok_or_else(|| short(needed))?;
                convert::nv12_to_rgb(bytes, width, height, &mut self.decoded)?;
            }
            CameraEncoding::Bgr24 | CameraEncoding::Gray => {
                // choose_format never picks these (not `is_usable`).
                return Err(MediaError::CameraFailed {
                    index: self.index,
                    reason: format!("{} frames are not supported", encoding.name()),
                });
            }
            CameraEncoding::Rgb24 => {
                let needed = width as usize * height as usize * 3;
                let bytes = data.get(..needed).ok_or_else(|| short(needed))?;
                self.decoded.reshape(width, height, PictureFormat::Rgb24)?;
                self.decoded.data_mut().copy_from_slice(bytes);
            }
        }
        *lock(&self.shared.spare) = Some(data);
        let mut picture = Picture::empty(self.decoded.format());
        if same_size {
            std::mem::swap(&mut picture, &mut self.decoded);
        } else {
            self.scaler.scale_into(
                &self.decoded,
                self.want.width(),
                self.want.height(),
                &mut picture,
            )?;
        }
        Ok(CapturedFrame {
            captured_at,
            sequence,
            content: FrameContent::Picture(picture),
        })
    }
}

impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<CapturedFrame, MediaError> {
        loop {
            let raw = self.take_newest()?;
            match self.convert(raw) {
                // USB cameras occasionally deliver a damaged MJPEG frame; one
                // bad frame is skipped, not a reason to end the call. A camera
                // that sends nothing else runs into the frame timeout.
                Err(MediaError::CorruptJpeg { reason }) => {
                    tracing::debug!(
                        camera = self.index,
                        "skipping damaged camera frame: {reason}"
                    );
                }
                result => return result,
            }
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

impl Drop for CameraSource {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        match self.finished.recv_timeout(CAMERA_RELEASE_TIMEOUT) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if let Some(worker) = self.worker.take() {
                    let _ = worker.join();
                }
            }
            Err(RecvTimeoutError::Timeout) => tracing::warn!(
                camera = self.index,
                "camera did not stop within {} s; its thread will release it when the driver returns",
                CAMERA_RELEASE_TIMEOUT.as_secs()
            ),
        }
    }
}

/// The camera thread: open, configure, stream into the slot until stopped.
fn capture(
    index: u32,
    want: Size,
    fps: Fps,
    prefer_mjpeg: bool,
    available: &str,
    shared: &Shared,
    opened: mpsc::SyncSender<Result<Opened, MediaError>>,
) {
    let open_failed = |reason: String| MediaError::CameraOpen {
        index,
        reason,
        available: available.to_owned(),
    };
    let setup = (|| {
        let mut camera = open_nokhwa(index).map_err(|error| open_failed(error.to_string()))?;
        let formats = camera
            .compatible_camera_formats()
            .map_err(|error| open_failed(error.to_string()))?;
        let infos: Vec<CameraFormatInfo> = formats.iter().map(format_info).collect();
        let choice = choose_format(&infos, want, fps, prefer_mjpeg).ok_or_else(|| {
            MediaError::CameraNoUsableFormat {
                index,
                offered: if infos.is_empty() {
                    "nothing".to_owned()
                } else {
                    infos
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }
        })?;
        // Exact: nokhwa's Closest has quirks; this format came from the camera's own list.
        let request = RequestedFormat::with_formats(
            RequestedFormatType::Exact(formats[choice.index]),
            REQUESTABLE_FORMATS,
        );
        camera
            .set_camera_requset(request)
            .map_err(|error| open_failed(error.to_string()))?;
        camera
            .open_stream()
            .map_err(|error| open_failed(error.to_string()))?;
        let name = camera.info().human_name();
        Ok((camera, Opened { choice, name }))
    })();
    let (mut camera, format) = match setup {
        Ok((camera, opened_info)) => {
            let format = opened_info.choice.format;
            if opened.send(Ok(opened_info)).is_err() {
                return; // The source gave up waiting; release the camera.
            }
            (camera, format)
        }
        Err(error) => {
            let _ = opened.send(Err(error));
            return;
        }
    };

    let mut sequence = 0;
    while !shared.stop.load(Ordering::Acquire) {
        match camera.frame_raw() {
            Ok(bytes) => {
                sequence += 1;
                let captured_at = Instant::now();
                // Reuse the buffer the consumer handed back, if there is one.
                let mut data = lock(&shared.spare).take().unwrap_or_default();
                data.clear();
                data.extend_from_slice(&bytes);
                shared.newest.put(RawFrame {
                    data,
                    width: format.width,
                    height: format.height,
                    encoding: format.encoding,
                    captured_at,
                    sequence,
                });
            }
            Err(error) => {
                *lock(&shared.failure) = Some(error.to_string());
                break;
            }
        }
    }
    let _ = camera.stop_stream();
    drop(camera);
    shared.newest.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(encoding: CameraEncoding, width: u32, height: u32, fps: f64) -> CameraFormatInfo {
        CameraFormatInfo {
            width,
            height,
            fps,
            encoding,
        }
    }

    /// What a typical UVC webcam (e.g. a Logitech C920) lists: MJPEG at every
    /// size at 30 fps, YUYV fast only at small sizes, plus an NTSC rate and a
    /// format we cannot decode.
    fn uvc_webcam() -> Vec<CameraFormatInfo> {
        use CameraEncoding::*;
        vec![
            format(Yuyv, 640, 480, 30.0),
            format(Yuyv, 640, 480, 15.0),
            format(Yuyv, 1280, 720, 10.0),
            format(Yuyv, 1920, 1080, 5.0),
            format(Mjpeg, 640, 480, 30.0),
            format(Mjpeg, 1280, 720, 30.0),
            format(Mjpeg, 1920, 1080, 30.0),
            format(Mjpeg, 320, 240, 30.0),
            format(Nv12, 1280, 720, 29.97),
            format(Gray, 1280, 720, 60.0),
        ]
    }

    fn choose(list: &[CameraFormatInfo], size: &str, fps: u32, mjpeg: bool) -> FormatChoice {
        choose_format(list, size.parse().unwrap(), Fps::new(fps).unwrap(), mjpeg).unwrap()
    }

    #[test]
    fn exact_match_prefers_the_codec_friendly_encoding() {
        let list = uvc_webcam();
        let choice = choose(&list, "640x480", 30, false);
        assert_eq!(choice.format, format(CameraEncoding::Yuyv, 640, 480, 30.0));
        assert!(choice.exact);
        assert_eq!(choice.reason, "exact match: YUYV 640x480 at 30 fps");
        let choice = choose(&list, "640x480", 30, true);
        assert_eq!(choice.format.encoding, CameraEncoding::Mjpeg);
        assert_eq!(choice.index, 4);
    }

    #[test]
    fn rate_matters_more_than_encoding() {
        // YUYV 720p only reaches 10 fps: MJPEG (or NV12 at 29.97) wins even for a raw call.
        let choice = choose(&uvc_webcam(), "1280x720", 30, false);
        assert_eq!((choice.format.width, choice.format.height), (1280, 720));
        assert!(choice.format.fps >= 29.9, "{choice:?}");
        assert_ne!(choice.format.encoding, CameraEncoding::Yuyv);
        assert!(choice.exact, "29.97 counts as 30: {choice:?}");
    }

    #[test]
    fn fractional_rate_is_exact_enough() {
        let list = vec![format(CameraEncoding::Nv12, 1280, 720, 29.97)];
        let choice = choose(&list, "1280x720", 30, true);
        assert!(choice.exact);
        assert_eq!(choice.reason, "exact match: NV12 1280x720 at 29.97 fps");
    }

    #[test]
    fn missing_size_takes_the_nearest_larger_one() {
        let list = uvc_webcam();
        let choice = choose(&list, "800x600", 30, true);
        assert_eq!((choice.format.width, choice.format.height), (640, 480));
        let choice = choose(&list, "960x540", 30, true);
        assert_eq!((choice.format.width, choice.format.height), (1280, 720));
        assert!(!choice.exact);
        assert!(
            choice
                .reason
                .contains("the camera has no 960x540 at 30 fps"),
            "{}",
            choice.reason
        );
        assert!(choice
            .reason
            .contains("nearest is MJPEG 1280x720 at 30 fps, frames scaled to 960x540"));
    }

    #[test]
    fn slow_exact_size_loses_to_a_fast_larger_one() {
        use CameraEncoding::*;
        let list = vec![
            format(Yuyv, 1280, 720, 10.0),
            format(Mjpeg, 1920, 1080, 30.0),
        ];
        let choice = choose(&list, "1280x720", 30, false);
        assert_eq!(choice.index, 1);
        // But a slightly slow exact size beats a much larger one.
        let list = vec![
            format(Yuyv, 1280, 720, 25.0),
            format(Mjpeg, 3840, 2160, 30.0),
        ];
        assert_eq!(choose(&list, "1280x720", 30, false).index, 0);
    }

    #[test]
    fn lower_rate_is_said() {
        let list = vec![format(CameraEncoding::Yuyv, 640, 480, 15.0)];
        let choice = choose(&list, "640x480", 30, false);
        assert!(!choice.exact);
        assert!(
            choice.reason.ends_with("at the camera's lower rate"),
            "{}",
            choice.reason
        );
    }

    #[test]
    fn nothing_usable() {
        let list = vec![
            format(CameraEncoding::Gray, 640, 480, 30.0),
            format(CameraEncoding::Bgr24, 640, 480, 30.0),
        ];
        assert!(choose_format(&list, Size::default(), Fps::default(), false).is_none());
        assert!(choose_format(&[], Size::default(), Fps::default(), true).is_none());
    }

    #[test]
    fn unknown_index_lists_what_exists() {
        let cameras = vec![
            CameraSummary {
                index: 0,
                name: "Integrated Camera".into(),
                description: String::new(),
            },
            CameraSummary {
                index: 2,
                name: "USB Camera".into(),
                description: String::new(),
            },
        ];
        let message = camera_not_found(7, &cameras).to_string();
        assert_eq!(
            message,
            "camera 7 does not exist; available cameras: 0 (Integrated Camera), 2 (USB Camera) \
             (see `vchat cameras`)"
        );
        assert!(matches!(camera_not_found(0, &[]), MediaError::NoCameras));
    }
}
