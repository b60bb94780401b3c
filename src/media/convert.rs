//! Colour conversion and scaling between the layouts the media layer meets.
//!
//! The conventions are fixed here, once:
//! - I420 pictures (ours, raw I420 payloads, recordings) are BT.601 limited
//!   range. That is what ffmpeg, ffprobe and mpv assume for an untagged
//!   YUV4MPEG2 stream and what webcams' YUYV output uses.
//! - RGB24 is full range 0..=255.
//! - JPEG is BT.601 *full* range by definition (JFIF); jpeg-encoder and
//!   zune-jpeg convert between RGB and that themselves, so JPEG data never
//!   passes through the functions here.
//!
//! Conversions use yuvutils-rs (SIMD, maintained) and scaling uses
//! fast_image_resize; both work on caller-owned buffers so per-frame paths
//! can reuse their allocations.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use yuvutils_rs::{
    YuvBiPlanarImage, YuvConversionMode, YuvPackedImage, YuvPlanarImage, YuvPlanarImageMut,
    YuvRange, YuvStandardMatrix,
};

use super::error::MediaError;
use super::picture::{i420_plane_lens, Picture, PictureFormat};

/// The Y'CbCr matrix of every Y'CbCr picture vchat makes or reads: BT.601.
const MATRIX: YuvStandardMatrix = YuvStandardMatrix::Bt601;

/// Chroma resolution of a planar Y'CbCr image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChromaSubsampling {
    Yuv420,
    Yuv422,
    Yuv444,
}

impl ChromaSubsampling {
    /// Width and height of one chroma plane.
    pub(crate) fn chroma_size(self, width: u32, height: u32) -> (u32, u32) {
        match self {
            ChromaSubsampling::Yuv420 => (width.div_ceil(2), height.div_ceil(2)),
            ChromaSubsampling::Yuv422 => (width.div_ceil(2), height),
            ChromaSubsampling::Yuv444 => (width, height),
        }
    }
}

/// Whether Y'CbCr values use the studio (16..=235) or the full (0..=255) range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColourRange {
    Limited,
    Full,
}

impl ColourRange {
    fn yuvutils(self) -> YuvRange {
        match self {
            ColourRange::Limited => YuvRange::Limited,
            ColourRange::Full => YuvRange::Full,
        }
    }
}

fn conversion_failed(step: &'static str) -> impl FnOnce(yuvutils_rs::YuvError) -> MediaError {
    move |error| MediaError::Conversion {
        step,
        reason: error.to_string(),
    }
}

/// Copies or converts `src` into `dst` in the `target` layout.
pub(crate) fn convert_into(
    src: &Picture,
    target: PictureFormat,
    dst: &mut Picture,
) -> Result<(), MediaError> {
    match (src.format(), target) {
        (PictureFormat::Rgb24, PictureFormat::I420) => {
            rgb_to_i420(src.data(), src.width(), src.height(), dst)
        }
        (PictureFormat::I420, PictureFormat::Rgb24) => {
            let (y, u, v) = i420_planes_of(src)?;
            planar_to_rgb(
                [y, u, v],
                src.width(),
                src.height(),
                ChromaSubsampling::Yuv420,
                ColourRange::Limited,
                dst,
            )
        }
        _ => {
            dst.reshape(src.width(), src.height(), target)?;
            dst.data_mut().copy_from_slice(src.data());
            Ok(())
        }
    }
}

/// The Y', Cb and Cr planes of an I420 picture.
type I420Planes<'a> = (&'a [u8], &'a [u8], &'a [u8]);

fn i420_planes_of(picture: &Picture) -> Result<I420Planes<'_>, MediaError> {
    picture.i420_planes().ok_or(MediaError::Conversion {
        step: "I420 planes",
        reason: "picture is not I420".to_owned(),
    })
}

/// Reshapes `dst` to a `width` x `height` I420 picture and lends its planes
/// to yuvutils as a conversion's destination.
fn i420_destination<'a>(
    dst: &'a mut Picture,
    width: u32,
    height: u32,
    step: &'static str,
) -> Result<YuvPlanarImageMut<'a, u8>, MediaError> {
    dst.reshape(width, height, PictureFormat::I420)?;
    let (chroma_width, _) = ChromaSubsampling::Yuv420.chroma_size(width, height);
    let (y, u, v) = dst.i420_planes_mut().ok_or(MediaError::Conversion {
        step,
        reason: "destination is not I420".to_owned(),
    })?;
    Ok(YuvPlanarImageMut {
        y_plane: yuvutils_rs::BufferStoreMut::Borrowed(y),
        y_stride: width,
        u_plane: yuvutils_rs::BufferStoreMut::Borrowed(u),
        u_stride: chroma_width,
        v_plane: yuvutils_rs::BufferStoreMut::Borrowed(v),
        v_stride: chroma_width,
        width,
        height,
    })
}

/// Full-range RGB24 to BT.601 limited-range I420 (chroma averaged over 2x2 blocks).
pub(crate) fn rgb_to_i420(
    rgb: &[u8],
    width: u32,
    height: u32,
    dst: &mut Picture,
) -> Result<(), MediaError> {
    let mut planar = i420_destination(dst, width, height, "RGB24 to I420")?;
    yuvutils_rs::rgb_to_yuv420(
        &mut planar,
        rgb,
        width * 3,
        YuvRange::Limited,
        MATRIX,
        YuvConversionMode::Balanced,
    )
    .map_err(conversion_failed("RGB24 to I420"))
}

/// Planar Y'CbCr (any subsampling, either range) to full-range RGB24.
pub(crate) fn planar_to_rgb(
    [y, u, v]: [&[u8]; 3],
    width: u32,
    height: u32,
    subsampling: ChromaSubsampling,
    range: ColourRange,
    dst: &mut Picture,
) -> Result<(), MediaError> {
    dst.reshape(width, height, PictureFormat::Rgb24)?;
    let (chroma_width, _) = subsampling.chroma_size(width, height);
    let planar = YuvPlanarImage {
        y_plane: y,
        y_stride: width,
        u_plane: u,
        u_stride: chroma_width,
        v_plane: v,
        v_stride: chroma_width,
        width,
        height,
    };
    let convert = match subsampling {
        ChromaSubsampling::Yuv420 => yuvutils_rs::yuv420_to_rgb,
        ChromaSubsampling::Yuv422 => yuvutils_rs::yuv422_to_rgb,
        ChromaSubsampling::Yuv444 => yuvutils_rs::yuv444_to_rgb,
    };
    convert(&planar, dst.data_mut(), width * 3, range.yuvutils(), MATRIX)
        .map_err(conversion_failed("Y'CbCr to RGB24"))
}

/// Packed YUYV 4:2:2 (what most webcams send uncompressed) to I420, same range.
pub(crate) fn yuyv_to_i420(
    yuyv: &[u8],
    width: u32,
    height: u32,
    dst: &mut Picture,
) -> Result<(), MediaError> {
    let mut planar = i420_destination(dst, width, height, "YUYV to I420")?;
    let packed = YuvPackedImage {
        yuy: yuyv,
        yuy_stride: width.div_ceil(2) * 4,
        width,
        height,
    };
    yuvutils_rs::yuyv422_to_yuv420(&mut planar, &packed).map_err(conversion_failed("YUYV to I420"))
}

/// NV12 (Y' plane, then interleaved CbCr at half resolution) to RGB24.
pub(crate) fn nv12_to_rgb(
    nv12: &[u8],
    width: u32,
    height: u32,
    dst: &mut Picture,
) -> Result<(), MediaError> {
    dst.reshape(width, height, PictureFormat::Rgb24)?;
    let (luma_len, _) = i420_plane_lens(width, height);
    if nv12.len() < luma_len {
        return Err(MediaError::Conversion {
            step: "NV12 to RGB24",
            reason: format!(
                "buffer of {} bytes is shorter than the luma plane",
                nv12.len()
            ),
        });
    }
    let (y, uv) = nv12.split_at(luma_len);
    let image = YuvBiPlanarImage {
        y_plane: y,
        y_stride: width,
        uv_plane: uv,
        uv_stride: width.div_ceil(2) * 2,
        width,
        height,
    };
    yuvutils_rs::yuv_nv12_to_rgb(
        &image,
        dst.data_mut(),
        width * 3,
        YuvRange::Limited,
        MATRIX,
        YuvConversionMode::Balanced,
    )
    .map_err(conversion_failed("NV12 to RGB24"))
}

/// Resizes pictures, keeping the resizer's internal buffers between frames.
pub(crate) struct Scaler {
    resizer: Resizer,
    options: ResizeOptions,
}

impl std::fmt::Debug for Scaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scaler")
    }
}

impl Scaler {
    pub(crate) fn new() -> Self {
        Scaler {
            resizer: Resizer::new(),
            // Bilinear convolution adapts its support to the scale factor, so
            // it does not alias when shrinking, and costs a fraction of Lanczos.
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        }
    }

    /// Scales `src` to exactly `width` x `height` into `dst` (same layout), stretching if the aspect differs.
    pub(crate) fn scale_into(
        &mut self,
        src: &Picture,
        width: u32,
        height: u32,
        dst: &mut Picture,
    ) -> Result<(), MediaError> {
        dst.reshape(width, height, src.format())?;
        match src.format() {
            PictureFormat::Rgb24 => self.scale_plane(
                src.data(),
                (src.width(), src.height()),
                dst.data_mut(),
                (width, height),
                PixelType::U8x3,
            ),
            PictureFormat::I420 => {
                let (src_y, src_u, src_v) = i420_planes_of(src)?;
                let src_chroma = ChromaSubsampling::Yuv420.chroma_size(src.width(), src.height());
                let dst_chroma = ChromaSubsampling::Yuv420.chroma_size(width, height);
                let (dst_y, dst_u, dst_v) =
                    dst.i420_planes_mut().ok_or(MediaError::Conversion {
                        step: "scale I420",
                        reason: "destination is not I420".to_owned(),
                    })?;
                let src_size = (src.width(), src.height());
                self.scale_plane(src_y, src_size, dst_y, (width, height), PixelType::U8)?;
                self.scale_plane(src_u, src_chroma, dst_u, dst_chroma, PixelType::U8)?;
                self.scale_plane(src_v, src_chroma, dst_v, dst_chroma, PixelType::U8)
            }
        }
    }

    fn scale_plane(
        &mut self,
        src: &[u8],
        (src_width, src_height): (u32, u32),
        dst: &mut [u8],
        (dst_width, dst_height): (u32, u32),
        pixel_type: PixelType,
    ) -> Result<(), MediaError> {
        let failed = |reason: String| MediaError::Conversion {
            step: "scale",
            reason,
        };
        let src_image = ImageRef::new(src_width, src_height, src, pixel_type)
            .map_err(|error| failed(error.to_string()))?;
        let mut dst_image = Image::from_slice_u8(dst_width, dst_height, dst, pixel_type)
            .map_err(|error| failed(error.to_string()))?;
        self.resizer
            .resize(&src_image, &mut dst_image, &self.options)
            .map_err(|error| failed(error.to_string()))
    }
}

/// Copies I420 `src` into I420 `dst` with its top-left corner at (`left`, `top`),
/// both even so chroma samples stay aligned. `src` must fit inside `dst`.
pub(crate) fn blit_i420(
    src: &Picture,
    dst: &mut Picture,
    left: u32,
    top: u32,
) -> Result<(), MediaError> {
    let misuse = |reason: &str| MediaError::Conversion {
        step: "blit I420",
        reason: reason.to_owned(),
    };
    if !left.is_multiple_of(2) || !top.is_multiple_of(2) {
        return Err(misuse("offset must be even"));
    }
    if left + src.width() > dst.width() || top + src.height() > dst.height() {
        return Err(misuse("source does not fit"));
    }
    let (src_width, src_height) = (src.width() as usize, src.height() as usize);
    let dst_width = dst.width() as usize;
    let src_chroma = ChromaSubsampling::Yuv420.chroma_size(src.width(), src.height());
    let dst_chroma = ChromaSubsampling::Yuv420.chroma_size(dst.width(), dst.height());
    let (src_y, src_u, src_v) = i420_planes_of(src)?;
    let (dst_y, dst_u, dst_v) = dst
        .i420_planes_mut()
        .ok_or_else(|| misuse("destination is not I420"))?;
    copy_rect(
        src_y,
        src_width,
        src_height,
        dst_y,
        dst_width,
        left as usize,
        top as usize,
    );
    let (chroma_left, chroma_top) = (left as usize / 2, top as usize / 2);
    for (src_plane, dst_plane) in [(src_u, dst_u), (src_v, dst_v)] {
        copy_rect(
            src_plane,
            src_chroma.0 as usize,
            src_chroma.1 as usize,
            dst_plane,
            dst_chroma.0 as usize,
            chroma_left,
            chroma_top,
        );
    }
    Ok(())
}

fn copy_rect(
    src: &[u8],
    src_width: usize,
    src_height: usize,
    dst: &mut [u8],
    dst_width: usize,
    left: usize,
    top: usize,
) {
    for (row_index, src_row) in src.chunks_exact(src_width).take(src_height).enumerate() {
        let start = (top + row_index) * dst_width + left;
        if let Some(dst_row) = dst.get_mut(start..start + src_width) {
            dst_row.copy_from_slice(src_row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb_picture(width: u32, height: u32, pixel: [u8; 3]) -> Picture {
        let data = pixel.repeat((width * height) as usize);
        Picture::new(width, height, PictureFormat::Rgb24, data).unwrap()
    }

    #[test]
    fn limited_range_levels() {
        // White and black map to Y' 235 and 16: BT.601 limited range.
        let mut i420 = Picture::empty(PictureFormat::I420);
        rgb_to_i420(rgb_picture(4, 4, [255, 255, 255]).data(), 4, 4, &mut i420).unwrap();
        let (y, u, _) = i420.i420_planes().unwrap();
        assert!(y.iter().all(|&v| v == 235), "{y:?}");
        assert!(u.iter().all(|&v| v == 128), "{u:?}");
        rgb_to_i420(rgb_picture(4, 4, [0, 0, 0]).data(), 4, 4, &mut i420).unwrap();
        assert!(i420.i420_planes().unwrap().0.iter().all(|&v| v == 16));
    }

    #[test]
    fn rgb_i420_round_trip_is_close_for_flat_colours() {
        for pixel in [
            [191, 191, 0],
            [0, 191, 191],
            [191, 0, 0],
            [12, 34, 56],
            [255, 255, 255],
        ] {
            let rgb = rgb_picture(6, 5, pixel);
            let mut i420 = Picture::empty(PictureFormat::I420);
            let mut back = Picture::empty(PictureFormat::Rgb24);
            convert_into(&rgb, PictureFormat::I420, &mut i420).unwrap();
            convert_into(&i420, PictureFormat::Rgb24, &mut back).unwrap();
            for (a, b) in rgb.data().iter().zip(back.data()) {
                assert!(a.abs_diff(*b) <= 3, "{pixel:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn yuyv_splits_into_planes() {
        // Two pixels: Y0 U Y1 V, on two rows.
        let yuyv = [50, 100, 60, 200, 70, 110, 80, 210];
        let mut i420 = Picture::empty(PictureFormat::I420);
        yuyv_to_i420(&yuyv, 2, 2, &mut i420).unwrap();
        let (y, u, v) = i420.i420_planes().unwrap();
        assert_eq!(y, &[50, 60, 70, 80]);
        // yuvutils takes 4:2:0 chroma from the even rows (no vertical averaging).
        assert!(
            (100..=110).contains(&u[0]) && (200..=210).contains(&v[0]),
            "{u:?} {v:?}"
        );
    }

    #[test]
    fn scaling_keeps_flat_colour_and_blit_places_it() {
        let mut scaler = Scaler::new();
        let rgb = rgb_picture(64, 48, [10, 200, 30]);
        let mut small = Picture::empty(PictureFormat::Rgb24);
        scaler.scale_into(&rgb, 20, 10, &mut small).unwrap();
        assert_eq!((small.width(), small.height()), (20, 10));
        assert!(small.data().chunks(3).all(|p| p == [10, 200, 30]));

        let mut i420 = Picture::empty(PictureFormat::I420);
        convert_into(&small, PictureFormat::I420, &mut i420).unwrap();
        let mut canvas = Picture::black(24, 14, PictureFormat::I420).unwrap();
        blit_i420(&i420, &mut canvas, 2, 2).unwrap();
        let (y, _, _) = canvas.i420_planes().unwrap();
        assert_eq!(y[0], 16);
        assert_eq!(y[2 * 24 + 2], i420.i420_planes().unwrap().0[0]);
        assert!(blit_i420(&i420, &mut canvas, 6, 2).is_err());
    }
}
