//! Thumbnails: each tile's pixels, longest side scaled to a few dozen pixels, stored as a JPEG blob
//! (field `thumbnail`) for galleries and heat maps.
//!
//! Invariant: a thumbnail keeps the tile's aspect ratio, is never larger than the tile, and is a
//! baseline JPEG any viewer decodes.

use image::RgbImage;
use jpeg_encoder::{ColorType, Encoder};

use crate::encode::{Interpolation, resample};

/// Default longest side of thumbnails, pixels.
pub const DEFAULT_THUMBNAIL_PX: u32 = 96;
/// JPEG quality of thumbnails.
pub const THUMBNAIL_QUALITY: u8 = 80;

/// The image scaled so that its longest side is at most `max_side` (Pillow's antialiased bilinear
/// resize, the integer one the tower's input is made with).
#[must_use]
pub fn fit(img: &RgbImage, max_side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let longest = w.max(h).max(1);
    if longest <= max_side {
        return img.clone();
    }
    let (tw, th) = (
        ((u64::from(w) * u64::from(max_side) / u64::from(longest)) as u32).max(1),
        ((u64::from(h) * u64::from(max_side) / u64::from(longest)) as u32).max(1),
    );
    resample(img, tw, th, Interpolation::Bilinear, true)
}

/// A JPEG thumbnail of `img` (longest side at most `max_side`); empty when encoding fails.
#[must_use]
pub fn jpeg(img: &RgbImage, max_side: u32) -> Vec<u8> {
    let small = fit(img, max_side);
    let (Ok(w), Ok(h)) = (u16::try_from(small.width()), u16::try_from(small.height())) else { return Vec::new() };
    let mut out = Vec::new();
    let ok = Encoder::new(&mut out, THUMBNAIL_QUALITY).encode(small.as_raw(), w, h, ColorType::Rgb).is_ok();
    if ok { out } else { Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnail_keeps_aspect() {
        let img = RgbImage::from_pixel(300, 150, image::Rgb([10, 200, 30]));
        let t = jpeg(&img, 96);
        let back = image::load_from_memory(&t).unwrap();
        assert_eq!((back.width(), back.height()), (96, 48));
    }
}
