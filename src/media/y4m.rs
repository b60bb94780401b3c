//! YUV4MPEG2 (.y4m) files: reading them as a video source and writing received video.
//!
//! Why not the `y4m` crate: it reports every header problem as "general
//! parsing error", treats a truncated last frame as a clean end of file and
//! accepts a zero frame rate. Files here come from users, so the small parser
//! below names what is wrong instead.
//!
//! Format (one text header line, then per frame a text line and raw planes):
//!
//! ```text
//! YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg XCOLORRANGE=LIMITED\n
//! FRAME\n <Y' plane> <Cb plane> <Cr plane>
//! FRAME\n ...
//! ```
//!
//! Recording choices, and why:
//! - `C420jpeg`: 8-bit 4:2:0 with chroma sited between the luma samples, which
//!   is how our RGB->I420 conversion averages 2x2 blocks, and what ffmpeg
//!   itself writes for yuv420p; ffprobe, ffplay and mpv (through libavformat)
//!   read it without warnings. `XYSCSS=420JPEG` is ffmpeg's companion tag.
//! - `XCOLORRANGE=LIMITED`: the BT.601 limited range we write, stated
//!   explicitly rather than left to each player's guess. (Y4M cannot state the
//!   matrix: ffmpeg assumes BT.601; mpv guesses BT.709 for HD sizes, which
//!   shifts hues slightly in HD recordings played there.)
//! - Frame rate and timing: the file runs at the call's `--fps`, and frames
//!   are placed by their capture times ([`Y4mRecorder::write_at`],
//!   [`Timeline`]): a frame period with no new frame (a dropped frame, a peer
//!   sending at a lower rate) repeats the picture before it, and a frame
//!   arriving within a period already written is left out. So the file plays
//!   at the speed the call happened. Gaps over [`MAX_FILL`] (the peer's
//!   camera off) become cuts rather than a long frozen picture.
//! - Size changes mid-call: the file keeps the first frame's size; later frames
//!   of another size are scaled to fit inside it, aspect ratio kept, centred
//!   on black (letterbox). One file, always playable.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::convert::{self, ChromaSubsampling, ColourRange, Scaler};
use super::error::MediaError;
use super::options::Fps;
use super::picture::{Picture, PictureFormat};
use crate::protocol::limits::{MAX_HEIGHT, MAX_WIDTH};

const FILE_MAGIC: &[u8] = b"YUV4MPEG2 ";
const FRAME_MAGIC: &[u8] = b"FRAME";
/// Longest header or FRAME line accepted; real headers are under 100 bytes,
/// and a bound keeps a binary file from being read as one endless line.
const MAX_LINE_LEN: usize = 1024;
/// What ffmpeg assumes when the F tag is missing.
const DEFAULT_FRAME_RATE: FrameRate = FrameRate {
    numerator: 25,
    denominator: 1,
};

/// Frames per second as the exact ratio a Y4M header states (30000:1001 is 29.97).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    pub numerator: u32,
    pub denominator: u32,
}

impl FrameRate {
    pub fn as_f64(self) -> f64 {
        f64::from(self.numerator) / f64::from(self.denominator)
    }
}

/// Chroma layouts vchat reads (all 8-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Y4mChroma {
    /// C420, C420jpeg, C420mpeg2, C420paldv (siting differences are ignored).
    C420,
    C422,
    C444,
}

impl Y4mChroma {
    fn subsampling(self) -> ChromaSubsampling {
        match self {
            Y4mChroma::C420 => ChromaSubsampling::Yuv420,
            Y4mChroma::C422 => ChromaSubsampling::Yuv422,
            Y4mChroma::C444 => ChromaSubsampling::Yuv444,
        }
    }
}

/// What a Y4M header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Y4mHeader {
    pub width: u32,
    pub height: u32,
    pub frame_rate: FrameRate,
    pub chroma: Y4mChroma,
    /// `XCOLORRANGE=FULL`; otherwise limited range, the Y4M convention.
    pub full_range: bool,
}

impl Y4mHeader {
    /// Bytes of the Y', Cb and Cr planes of one frame.
    pub fn plane_lens(&self) -> [usize; 3] {
        let (chroma_width, chroma_height) = self
            .chroma
            .subsampling()
            .chroma_size(self.width, self.height);
        let chroma = chroma_width as usize * chroma_height as usize;
        [self.width as usize * self.height as usize, chroma, chroma]
    }

    fn frame_len(&self) -> usize {
        self.plane_lens().iter().sum()
    }
}

/// Reads frames from a Y4M stream, reusing one frame buffer.
pub struct Y4mReader<R> {
    reader: R,
    /// Named in every error message.
    path: PathBuf,
    header: Y4mHeader,
    /// Offset of the first FRAME line, for looping.
    data_start: u64,
    frame: Vec<u8>,
    line: Vec<u8>,
    frames_read: u64,
}

impl Y4mReader<BufReader<File>> {
    /// Opens a file and parses its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, MediaError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| MediaError::FileRead {
            path: path.to_owned(),
            source,
        })?;
        Y4mReader::new(BufReader::new(file), path)
    }
}

impl<R: BufRead> Y4mReader<R> {
    /// Parses the header from `reader`; `path` names the stream in errors.
    pub fn new(mut reader: R, path: impl Into<PathBuf>) -> Result<Self, MediaError> {
        let path = path.into();
        let mut line = Vec::new();
        let line_len = match read_line(&mut reader, &mut line, &path)? {
            Line::Complete(len) => len,
            Line::EndOfFile if line.is_empty() => {
                return Err(malformed(&path, "the file is empty"))
            }
            Line::EndOfFile | Line::TooLong => {
                return Err(malformed(
                    &path,
                    if line.starts_with(FILE_MAGIC) {
                        "the header line does not end with a newline"
                    } else {
                        "it does not start with `YUV4MPEG2 `"
                    },
                ))
            }
        };
        let header = parse_header(&line, &path)?;
        let frame = vec![0; header.frame_len()];
        Ok(Y4mReader {
            reader,
            path,
            header,
            data_start: line_len as u64,
            frame,
            line,
            frames_read: 0,
        })
    }

    pub fn header(&self) -> &Y4mHeader {
        &self.header
    }

    /// Reads the next frame's planes (Y', Cb, Cr); `None` at a clean end of file.
    pub fn read_frame_planes(&mut self) -> Result<Option<[&[u8]; 3]>, MediaError> {
        let frame_number = self.frames_read + 1;
        match read_line(&mut self.reader, &mut self.line, &self.path)? {
            Line::EndOfFile if self.line.is_empty() => return Ok(None),
            Line::EndOfFile => {
                return Err(malformed(
                    &self.path,
                    &format!("frame {frame_number} is truncated inside its FRAME line"),
                ))
            }
            Line::TooLong => {
                return Err(malformed(
                    &self.path,
                    &format!("frame {frame_number} does not start with a FRAME line"),
                ))
            }
            Line::Complete(_) => {}
        }
        let params = self.line.strip_prefix(FRAME_MAGIC).filter(|rest| {
            rest.is_empty() || rest.starts_with(b" ") // "FRAME" or "FRAME <params>"
        });
        if params.is_none() {
            return Err(malformed(
                &self.path,
                &format!(
                    "frame {frame_number} starts with {:?} instead of FRAME (is the W/H/C in the \
                     header right?)",
                    shown(&self.line)
                ),
            ));
        }
        let got = read_fully(&mut self.reader, &mut self.frame).map_err(|source| {
            MediaError::FileRead {
                path: self.path.clone(),
                source,
            }
        })?;
        if got < self.frame.len() {
            return Err(malformed(
                &self.path,
                &format!(
                    "frame {frame_number} is truncated: it needs {} bytes of picture data but \
                     the file ends after {got}",
                    self.frame.len()
                ),
            ));
        }
        self.frames_read += 1;
        let [luma, chroma, _] = self.header.plane_lens();
        let (y, rest) = self.frame.split_at(luma);
        let (u, v) = rest.split_at(chroma);
        Ok(Some([y, u, v]))
    }

    /// Reads the next frame into `out`: I420 as stored for limited-range 4:2:0
    /// files (no conversion, so raw I420 payloads are exact), RGB24 otherwise.
    /// Returns `false` at a clean end of file.
    pub fn read_frame_into(&mut self, out: &mut Picture) -> Result<bool, MediaError> {
        let header = self.header;
        let Some(planes) = self.read_frame_planes()? else {
            return Ok(false);
        };
        if header.chroma == Y4mChroma::C420 && !header.full_range {
            out.reshape(header.width, header.height, PictureFormat::I420)?;
            let mut offset = 0;
            for plane in planes {
                out.data_mut()[offset..offset + plane.len()].copy_from_slice(plane);
                offset += plane.len();
            }
        } else {
            let range = if header.full_range {
                ColourRange::Full
            } else {
                ColourRange::Limited
            };
            convert::planar_to_rgb(
                planes,
                header.width,
                header.height,
                header.chroma.subsampling(),
                range,
                out,
            )?;
        }
        Ok(true)
    }
}

impl<R: BufRead + Seek> Y4mReader<R> {
    /// Goes back to the first frame (for looping playback).
    pub fn rewind(&mut self) -> Result<(), MediaError> {
        self.reader
            .seek(SeekFrom::Start(self.data_start))
            .map_err(|source| MediaError::FileRead {
                path: self.path.clone(),
                source,
            })?;
        self.frames_read = 0;
        Ok(())
    }
}

fn malformed(path: &Path, problem: &str) -> MediaError {
    MediaError::MalformedY4m {
        path: path.to_owned(),
        problem: problem.to_owned(),
    }
}

/// Up to 40 bytes of a line, for messages.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned()
}

enum Line {
    /// A line ended by '\n'; the count includes the newline.
    Complete(usize),
    EndOfFile,
    TooLong,
}

/// Reads one '\n'-terminated line (without the '\n') into `line`, at most [`MAX_LINE_LEN`].
fn read_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    path: &Path,
) -> Result<Line, MediaError> {
    line.clear();
    let read = reader
        .by_ref()
        .take(MAX_LINE_LEN as u64 + 1)
        .read_until(b'\n', line)
        .map_err(|source| MediaError::FileRead {
            path: path.to_owned(),
            source,
        })?;
    if line.last() == Some(&b'\n') {
        line.pop();
        Ok(Line::Complete(read))
    } else if read > MAX_LINE_LEN {
        Ok(Line::TooLong)
    } else {
        Ok(Line::EndOfFile)
    }
}

/// Fills `buffer` unless the stream ends first; returns how much was read.
fn read_fully(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

fn parse_header(line: &[u8], path: &Path) -> Result<Y4mHeader, MediaError> {
    let Some(tags) = line.strip_prefix(FILE_MAGIC) else {
        return Err(malformed(
            path,
            &format!(
                "it does not start with `YUV4MPEG2 ` (it starts with {:?})",
                shown(line)
            ),
        ));
    };
    let tags =
        std::str::from_utf8(tags).map_err(|_| malformed(path, "the header line is not text"))?;
    let mut width = None;
    let mut height = None;
    let mut frame_rate = DEFAULT_FRAME_RATE;
    let mut chroma = Y4mChroma::C420;
    let mut full_range = false;
    for tag in tags.split(' ').filter(|tag| !tag.is_empty()) {
        let (letter, value) = tag.split_at(1);
        match letter {
            "W" => width = Some(parse_dimension(value, "width", tag, MAX_WIDTH, path)?),
            "H" => height = Some(parse_dimension(value, "height", tag, MAX_HEIGHT, path)?),
            "F" => frame_rate = parse_frame_rate(value, tag, path)?,
            "C" => chroma = parse_chroma(value, path)?,
            "X" if value.eq_ignore_ascii_case("COLORRANGE=FULL") => full_range = true,
            "X" if value.eq_ignore_ascii_case("COLORRANGE=LIMITED") => full_range = false,
            // I (interlacing), A (aspect) and other X tags do not change how
            // the bytes are laid out; frames are shown as progressive.
            _ => {}
        }
    }
    let width = width.ok_or_else(|| malformed(path, "the header has no width (W tag)"))?;
    let height = height.ok_or_else(|| malformed(path, "the header has no height (H tag)"))?;
    Ok(Y4mHeader {
        width,
        height,
        frame_rate,
        chroma,
        full_range,
    })
}

fn parse_dimension(
    value: &str,
    side: &str,
    tag: &str,
    max: u32,
    path: &Path,
) -> Result<u32, MediaError> {
    let number: u32 = value
        .parse()
        .map_err(|_| malformed(path, &format!("{side} `{tag}` is not a whole number")))?;
    if number == 0 {
        return Err(malformed(path, &format!("the {side} is zero")));
    }
    if number > max {
        return Err(malformed(
            path,
            &format!(
                "{side} {number} is larger than the {MAX_WIDTH}x{MAX_HEIGHT} vchat \
                 handles; scale it down with ffmpeg -vf scale=..."
            ),
        ));
    }
    Ok(number)
}

fn parse_frame_rate(value: &str, tag: &str, path: &Path) -> Result<FrameRate, MediaError> {
    let bad = || {
        malformed(
            path,
            &format!(
                "frame rate `{tag}` must be F<numerator>:<denominator>, both non-zero, e.g. F30:1"
            ),
        )
    };
    let (numerator, denominator) = value.split_once(':').ok_or_else(bad)?;
    let numerator: u32 = numerator.parse().map_err(|_| bad())?;
    let denominator: u32 = denominator.parse().map_err(|_| bad())?;
    if numerator == 0 || denominator == 0 {
        return Err(bad());
    }
    Ok(FrameRate {
        numerator,
        denominator,
    })
}

fn parse_chroma(value: &str, path: &Path) -> Result<Y4mChroma, MediaError> {
    match value {
        "420" | "420jpeg" | "420mpeg2" | "420paldv" => Ok(Y4mChroma::C420),
        "422" => Ok(Y4mChroma::C422),
        "444" => Ok(Y4mChroma::C444),
        other => Err(malformed(
            path,
            &format!(
                "colour space C{other} is not supported: vchat reads 8-bit C420 (also 420jpeg, \
                 420mpeg2, 420paldv), C422 and C444; convert with `ffmpeg -i IN -pix_fmt \
                 yuv420p OUT.y4m`"
            ),
        )),
    }
}

/// Longest stretch a recording fills by repeating the previous picture; a
/// longer gap (the peer turned its camera off) is cut out instead.
pub const MAX_FILL: std::time::Duration = std::time::Duration::from_secs(1);

/// Where frames fall on a recording's fixed-rate timeline, from their
/// capture times (microseconds on the sender's clock; only differences
/// matter). Pure arithmetic, no I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    period_us: u64,
    max_fill: u64,
    /// Capture time of frame slot 0, once the first frame is placed.
    origin_us: Option<u64>,
}

/// What to write for one incoming frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Repeat the previous picture `repeat_previous` times, then write this one.
    Write { repeat_previous: u64 },
    /// The frame falls in a slot already written: leave it out.
    Skip,
}

impl Timeline {
    pub fn new(frame_rate: Fps) -> Self {
        let period_us = (1_000_000 / u64::from(frame_rate.get())).max(1);
        Timeline {
            period_us,
            max_fill: MAX_FILL.as_micros() as u64 / period_us,
            origin_us: None,
        }
    }

    /// Places a frame captured at `capture_us` when `written` frames are in
    /// the file. Clock jumps backwards and gaps over [`MAX_FILL`] re-anchor
    /// the timeline so the frame goes straight after the last one.
    pub fn place(&mut self, capture_us: u64, written: u64) -> Placement {
        let origin = *self.origin_us.get_or_insert(capture_us);
        let elapsed = capture_us.checked_sub(origin);
        let slot = elapsed.map(|us| (us + self.period_us / 2) / self.period_us);
        match slot {
            Some(slot) if slot < written => Placement::Skip,
            Some(slot) if slot - written <= self.max_fill => Placement::Write {
                repeat_previous: if written == 0 { 0 } else { slot - written },
            },
            _ => {
                self.origin_us =
                    Some(capture_us.saturating_sub(written.saturating_mul(self.period_us)));
                Placement::Write { repeat_previous: 0 }
            }
        }
    }
}

/// Writes received video as a C420jpeg YUV4MPEG2 file (see the module notes).
pub struct Y4mRecorder {
    path: PathBuf,
    writer: BufWriter<File>,
    frame_rate: Fps,
    /// The recording's size, fixed by the first frame.
    size: Option<(u32, u32)>,
    i420: Picture,
    scaled: Picture,
    canvas: Picture,
    scaler: Scaler,
    frames_written: u64,
    timeline: Timeline,
    /// The audio sample the next new frame went up at, if known.
    note: Option<u64>,
    /// The last frame written, to repeat across periods with no new frame.
    previous: Vec<u8>,
}

impl std::fmt::Debug for Y4mRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Y4mRecorder({}, {:?}, {} frames)",
            self.path.display(),
            self.size,
            self.frames_written
        )
    }
}

impl Y4mRecorder {
    /// Creates (or truncates) `path`; frames will be declared as `frame_rate` per second.
    /// The header is written with the first frame, whose size the file keeps.
    pub fn create(path: impl AsRef<Path>, frame_rate: Fps) -> Result<Self, MediaError> {
        let path = path.as_ref().to_owned();
        let file = File::create(&path).map_err(|source| MediaError::FileWrite {
            path: path.clone(),
            source,
        })?;
        Ok(Y4mRecorder {
            path,
            writer: BufWriter::new(file),
            frame_rate,
            size: None,
            i420: Picture::empty(PictureFormat::I420),
            scaled: Picture::empty(PictureFormat::I420),
            canvas: Picture::empty(PictureFormat::I420),
            scaler: Scaler::new(),
            frames_written: 0,
            timeline: Timeline::new(frame_rate),
            note: None,
            previous: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn frames_written(&self) -> u64 {
        self.frames_written
    }

    /// The recording's size, once the first frame has fixed it.
    pub fn size(&self) -> Option<(u32, u32)> {
        self.size
    }

    /// Places a frame captured at `capture_us` (µs, sender's clock) on the
    /// recording's timeline: periods since the last frame are filled with
    /// the previous picture, and a frame within a period already written is
    /// left out (see [`Timeline`]).
    pub fn write_at(&mut self, picture: &Picture, capture_us: u64) -> Result<(), MediaError> {
        match self.timeline.place(capture_us, self.frames_written) {
            Placement::Skip => Ok(()),
            Placement::Write { repeat_previous } => {
                for _ in 0..repeat_previous {
                    self.write_previous()?;
                }
                self.write(picture)
            }
        }
    }

    /// Appends one frame, letterboxed into the recording's size if it differs.
    pub fn write(&mut self, picture: &Picture) -> Result<(), MediaError> {
        let (width, height) = match self.size {
            Some(size) => size,
            None => {
                let size = (picture.width(), picture.height());
                let header = format!(
                    "YUV4MPEG2 W{} H{} F{}:1 Ip A1:1 C420jpeg XYSCSS=420JPEG XCOLORRANGE=LIMITED\n",
                    size.0, size.1, self.frame_rate
                );
                self.write_bytes(header.as_bytes())?;
                self.size = Some(size);
                size
            }
        };
        let i420 = if picture.format() == PictureFormat::I420 {
            picture
        } else {
            convert::convert_into(picture, PictureFormat::I420, &mut self.i420)?;
            &self.i420
        };
        let frame = if (i420.width(), i420.height()) == (width, height) {
            i420.data()
        } else {
            letterbox(
                i420,
                width,
                height,
                &mut self.scaler,
                &mut self.scaled,
                &mut self.canvas,
            )?;
            self.canvas.data()
        };
        // Kept (in a reused buffer) in case the next periods bring no frame.
        self.previous.clear();
        self.previous.extend_from_slice(frame);
        let note = self.note.take();
        self.write_frame(note)
    }

    /// [`Y4mRecorder::write_at`] for a picture that went up on screen while
    /// the audio output was at sample `audio_sample` (of `--record-audio`'s
    /// WAV): its FRAME line says so (`FRAME XAUDIO=<sample>`, a parameter
    /// players ignore), which lines the two recordings up.
    pub fn write_at_shown(
        &mut self,
        picture: &Picture,
        capture_us: u64,
        audio_sample: u64,
    ) -> Result<(), MediaError> {
        self.note = Some(audio_sample);
        let written = self.write_at(picture, capture_us);
        self.note = None;
        written
    }

    /// Appends the last frame written (again).
    fn write_previous(&mut self) -> Result<(), MediaError> {
        self.write_frame(None)
    }

    fn write_frame(&mut self, audio_sample: Option<u64>) -> Result<(), MediaError> {
        let line = match audio_sample {
            Some(sample) => writeln!(self.writer, "FRAME XAUDIO={sample}"),
            None => self.writer.write_all(b"FRAME\n"),
        };
        line.and_then(|()| self.writer.write_all(&self.previous))
            .map_err(|source| MediaError::FileWrite {
                path: self.path.clone(),
                source,
            })?;
        self.frames_written += 1;
        Ok(())
    }

    /// Flushes the file and reports the number of frames written.
    pub fn finish(mut self) -> Result<u64, MediaError> {
        self.writer
            .flush()
            .map_err(|source| MediaError::FileWrite {
                path: self.path.clone(),
                source,
            })?;
        Ok(self.frames_written)
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), MediaError> {
        self.writer
            .write_all(bytes)
            .map_err(|source| MediaError::FileWrite {
                path: self.path.clone(),
                source,
            })
    }
}

/// Scales `src` to fit inside `width` x `height` keeping its aspect ratio and
/// centres it on black in `canvas`.
fn letterbox(
    src: &Picture,
    width: u32,
    height: u32,
    scaler: &mut Scaler,
    scaled: &mut Picture,
    canvas: &mut Picture,
) -> Result<(), MediaError> {
    let (src_width, src_height) = (u64::from(src.width()), u64::from(src.height()));
    let (fit_width, fit_height) = if src_width * u64::from(height) > src_height * u64::from(width) {
        (
            u64::from(width),
            (src_height * u64::from(width) / src_width).max(1),
        )
    } else {
        (
            (src_width * u64::from(height) / src_height).max(1),
            u64::from(height),
        )
    };
    // Even sizes and offsets keep the 2x2 chroma blocks aligned with the canvas's.
    let even = |value: u64, limit: u32| ((value as u32) & !1).clamp(2.min(limit), limit);
    let (fit_width, fit_height) = (even(fit_width, width & !1), even(fit_height, height & !1));
    scaler.scale_into(src, fit_width, fit_height, scaled)?;
    canvas.reshape(width, height, PictureFormat::I420)?;
    canvas.fill_black();
    let left = ((width - fit_width) / 2) & !1;
    let top = ((height - fit_height) / 2) & !1;
    convert::blit_i420(scaled, canvas, left, top)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn reader(bytes: &[u8]) -> Result<Y4mReader<Cursor<Vec<u8>>>, MediaError> {
        Y4mReader::new(Cursor::new(bytes.to_vec()), "test.y4m")
    }

    /// Feeds capture times (ms) through a 30 fps timeline, writing as told,
    /// and returns how many file frames each input frame took (0: skipped).
    fn frames_per_input(capture_ms: &[u64]) -> Vec<u64> {
        let mut timeline = Timeline::new(Fps::new(30).unwrap());
        let mut written = 0;
        let mut taken = Vec::new();
        for &ms in capture_ms {
            match timeline.place(1_700_000_000_000 + ms * 1000, written) {
                Placement::Skip => taken.push(0),
                Placement::Write { repeat_previous } => {
                    // The repeats are the previous input's frames.
                    if let Some(last) = taken.iter_mut().rev().find(|n| **n > 0) {
                        *last += repeat_previous;
                    }
                    taken.push(1);
                    written += repeat_previous + 1;
                }
            }
        }
        taken
    }

    #[test]
    fn the_timeline_keeps_the_call_s_speed() {
        // A steady 30 fps sender: one file frame each.
        assert_eq!(frames_per_input(&[0, 33, 67, 100, 133]), [1, 1, 1, 1, 1]);
        // A 15 fps sender into a 30 fps file: each picture twice.
        assert_eq!(frames_per_input(&[0, 67, 133, 200]), [2, 2, 2, 1]);
        // A dropped frame: the picture before it covers its period.
        assert_eq!(frames_per_input(&[0, 33, 100, 133]), [1, 2, 1, 1]);
        // A 60 fps sender: every other frame is left out.
        assert_eq!(frames_per_input(&[0, 17, 33, 50, 67]), [1, 1, 0, 1, 0]);
    }

    #[test]
    fn long_gaps_and_clock_jumps_become_cuts() {
        // 5 s without video (camera off): no 150 frozen frames, a cut.
        assert_eq!(frames_per_input(&[0, 33, 5033, 5067]), [1, 1, 1, 1]);
        // Up to MAX_FILL (1 s) is filled: 30 periods, the last the new frame's.
        assert_eq!(frames_per_input(&[0, 1000]), [30, 1]);
        // The sender's clock steps back: the timeline re-anchors.
        assert_eq!(frames_per_input(&[1000, 1033, 0, 33]), [1, 1, 1, 1]);
    }

    fn problem(bytes: &[u8]) -> String {
        match reader(bytes) {
            Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(bytes)),
            Err(error) => error.to_string(),
        }
    }

    fn frame_error(bytes: &[u8]) -> String {
        let mut reader = reader(bytes).unwrap();
        loop {
            match reader.read_frame_planes() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("no error"),
                Err(error) => return error.to_string(),
            }
        }
    }

    /// A 4x2 C420 file: 8 luma + 2 + 2 chroma bytes per frame.
    fn tiny_file(frames: usize) -> Vec<u8> {
        let mut bytes = b"YUV4MPEG2 W4 H2 F30000:1001 It A0:0 C420mpeg2 XFOO=1\n".to_vec();
        for index in 0..frames {
            bytes.extend_from_slice(b"FRAME\n");
            bytes.extend((0..12).map(|byte| (index * 12 + byte) as u8));
        }
        bytes
    }

    #[test]
    fn parses_header_and_frames() {
        let mut reader = reader(&tiny_file(2)).unwrap();
        let header = *reader.header();
        assert_eq!(
            (header.width, header.height, header.chroma),
            (4, 2, Y4mChroma::C420)
        );
        assert_eq!(
            header.frame_rate,
            FrameRate {
                numerator: 30000,
                denominator: 1001
            }
        );
        assert!(!header.full_range);
        let [y, u, v] = reader.read_frame_planes().unwrap().unwrap();
        assert_eq!(
            (y, u, v),
            (&[0, 1, 2, 3, 4, 5, 6, 7][..], &[8, 9][..], &[10, 11][..])
        );
        assert!(reader.read_frame_planes().unwrap().is_some());
        assert!(reader.read_frame_planes().unwrap().is_none());
        reader.rewind().unwrap();
        assert_eq!(reader.read_frame_planes().unwrap().unwrap()[0][0], 0);
    }

    #[test]
    fn defaults_and_tags() {
        let header = *reader(b"YUV4MPEG2 W16 H16\n").unwrap().header();
        assert_eq!(header.frame_rate, DEFAULT_FRAME_RATE);
        assert_eq!(header.chroma, Y4mChroma::C420);
        let header = *reader(b"YUV4MPEG2 W16 H16 F1:2 C444 XCOLORRANGE=FULL\n")
            .unwrap()
            .header();
        assert_eq!((header.chroma, header.full_range), (Y4mChroma::C444, true));
        assert_eq!(header.plane_lens(), [256, 256, 256]);
        // Parameters on FRAME lines are allowed.
        let mut bytes = b"YUV4MPEG2 W2 H2 C444\nFRAME Ixyz\n".to_vec();
        bytes.extend([0; 12]);
        assert!(reader(&bytes)
            .unwrap()
            .read_frame_planes()
            .unwrap()
            .is_some());
    }

    #[test]
    fn header_errors_say_what_is_wrong() {
        for (bytes, needle) in [
            (&b""[..], "the file is empty"),
            (b"RIFF\x00\x00WAVE\n", "does not start with `YUV4MPEG2 `"),
            (b"YUV4MPEG W4 H2\n", "does not start with `YUV4MPEG2 `"),
            (b"YUV4MPEG2 W4 H2", "does not end with a newline"),
            (b"YUV4MPEG2 H2 F25:1\n", "no width (W tag)"),
            (b"YUV4MPEG2 W4\n", "no height (H tag)"),
            (b"YUV4MPEG2 W0 H2\n", "the width is zero"),
            (b"YUV4MPEG2 W4 H0\n", "the height is zero"),
            (
                b"YUV4MPEG2 Wfour H2\n",
                "width `Wfour` is not a whole number",
            ),
            (b"YUV4MPEG2 W99999 H2\n", "larger than the 3840x2160"),
            (b"YUV4MPEG2 W4 H2 F25\n", "frame rate `F25`"),
            (b"YUV4MPEG2 W4 H2 F25:0\n", "both non-zero"),
            (b"YUV4MPEG2 W4 H2 C420p10\n", "C420p10 is not supported"),
            (b"YUV4MPEG2 W4 H2 Cmono\n", "Cmono is not supported"),
        ] {
            let message = problem(bytes);
            assert!(
                message.contains(needle),
                "{:?}: {message}",
                String::from_utf8_lossy(bytes)
            );
            assert!(message.contains("test.y4m"), "{message}");
        }
        let long = [
            b"YUV4MPEG2 W4 H2 ".to_vec(),
            vec![b'X'; 2000],
            b"\n".to_vec(),
        ]
        .concat();
        assert!(problem(&long).contains("does not end with a newline"));
    }

    #[test]
    fn frame_errors_say_what_is_wrong() {
        let mut truncated = tiny_file(2);
        truncated.truncate(truncated.len() - 5);
        assert!(frame_error(&truncated).contains(
            "frame 2 is truncated: it needs 12 bytes of picture data but the file ends after 7"
        ));

        let mut cut_in_line = tiny_file(1);
        cut_in_line.extend_from_slice(b"FRA");
        assert!(frame_error(&cut_in_line).contains("frame 2 is truncated inside its FRAME line"));

        let mut wrong_size = b"YUV4MPEG2 W4 H2 C420\n".to_vec();
        wrong_size.extend_from_slice(b"FRAME\n");
        wrong_size.extend([0; 14]); // two bytes too many for 4x2 4:2:0
        wrong_size.extend_from_slice(b"FRAME\n");
        wrong_size.extend([0; 12]);
        assert!(
            frame_error(&wrong_size).contains("frame 2 starts with"),
            "{}",
            frame_error(&wrong_size)
        );

        let mut framex = b"YUV4MPEG2 W4 H2\nFRAMEX\n".to_vec();
        framex.extend([0; 12]);
        assert!(frame_error(&framex).contains("instead of FRAME"));
    }

    #[test]
    fn limited_420_is_kept_as_i420_and_others_become_rgb() {
        let mut limited = reader(&tiny_file(1)).unwrap();
        let mut picture = Picture::empty(PictureFormat::Rgb24);
        assert!(limited.read_frame_into(&mut picture).unwrap());
        assert_eq!(picture.format(), PictureFormat::I420);
        assert_eq!(picture.data(), (0..12).collect::<Vec<u8>>());
        assert!(!limited.read_frame_into(&mut picture).unwrap());

        let mut bytes = b"YUV4MPEG2 W2 H1 C444 XCOLORRANGE=FULL\nFRAME\n".to_vec();
        bytes.extend([255, 0, 128, 128, 128, 128]);
        let mut full_range = reader(&bytes).unwrap();
        assert!(full_range.read_frame_into(&mut picture).unwrap());
        assert_eq!(picture.format(), PictureFormat::Rgb24);
        assert_eq!(picture.data(), &[255, 255, 255, 0, 0, 0]);
    }
}
