//! Georeferencing: `GeoTIFF` tags -> an affine pixel-to-CRS transform -> WGS84 footprints.
//!
//! What is understood:
//! - `ModelTiepointTag` + `ModelPixelScaleTag` (the usual north-up case) or `ModelTransformationTag`
//!   (rotated or sheared grids); `GTRasterTypeGeoKey` `PixelIsPoint` shifts the grid by half a pixel, as
//!   GDAL does;
//! - CRSs: EPSG:4326 (longitude/latitude), WGS84 UTM zones (EPSG:326zz north, 327zz south), ETRS89 and
//!   NAD83 UTM zones (EPSG:258zz, 269zz; their ellipsoid, GRS80, differs from WGS84's by under a
//!   millimetre and the datum shift, under 2 m, is ignored), and Web Mercator (EPSG:3857). Any other
//!   CRS is kept by name ([`Crs::Other`]) and gives no footprint.
//!
//! Invariants: a footprint is a valid WGS84 bbox (`min <= max`, longitudes in -180..=180, latitudes in
//! -90..=90) or `None`; a window crossing the antimeridian gets `None` rather than a box round the world.

/// `ModelPixelScaleTag`: `[sx, sy, sz]`.
pub const TAG_MODEL_PIXEL_SCALE: u16 = 33550;
/// `ModelTiepointTag`: `[i, j, k, x, y, z]` per tiepoint.
pub const TAG_MODEL_TIEPOINT: u16 = 33922;
/// `ModelTransformationTag`: a row-major 4x4 matrix.
pub const TAG_MODEL_TRANSFORMATION: u16 = 34264;
/// `GeoKeyDirectoryTag`: `[version, revision, minor, count, (key, location, count, value) * count]`.
pub const TAG_GEO_KEY_DIRECTORY: u16 = 34735;
/// GDAL's no-data value, an ASCII number.
pub const TAG_GDAL_NODATA: u16 = 42113;

/// `GTModelTypeGeoKey`.
pub const KEY_MODEL_TYPE: u16 = 1024;
/// `GTRasterTypeGeoKey` (1 = `PixelIsArea`, 2 = `PixelIsPoint`).
pub const KEY_RASTER_TYPE: u16 = 1025;
/// `GeographicTypeGeoKey`.
pub const KEY_GEOGRAPHIC_TYPE: u16 = 2048;
/// `ProjectedCSTypeGeoKey`.
pub const KEY_PROJECTED_TYPE: u16 = 3072;

/// WGS84 semi-major axis, metres.
const WGS84_A: f64 = 6_378_137.0;
/// WGS84 flattening.
const WGS84_F: f64 = 1.0 / 298.257_223_563;
/// UTM scale factor on the central meridian.
const UTM_K0: f64 = 0.9996;
/// UTM false easting, metres.
const UTM_FALSE_EASTING: f64 = 500_000.0;
/// UTM false northing in the southern hemisphere, metres.
const UTM_FALSE_NORTHING_SOUTH: f64 = 10_000_000.0;
/// Metres per degree of latitude (mean), for ground-resolution estimates only.
const METRES_PER_DEGREE: f64 = 111_320.0;

/// A coordinate reference system as far as footprints are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crs {
    /// EPSG:4326, x = longitude, y = latitude, degrees.
    Wgs84,
    /// A UTM zone (WGS84, or GRS80-based datums that agree with it to under 2 m).
    Utm {
        /// EPSG code as found in the file.
        epsg: u32,
        /// Zone 1..=60.
        zone: u8,
        /// Northern hemisphere.
        north: bool,
    },
    /// EPSG:3857 (and the old 900913).
    WebMercator,
    /// Any other EPSG code: kept and reported, no footprint.
    Other(u32),
    /// A user-defined or missing CRS definition.
    Unknown,
}

impl Crs {
    /// The CRS of an EPSG code.
    #[must_use]
    pub fn from_epsg(code: u32) -> Crs {
        let utm = |zone: u32, north: bool| {
            if (1..=60).contains(&zone) { Crs::Utm { epsg: code, zone: zone as u8, north } } else { Crs::Other(code) }
        };
        match code {
            4326 => Crs::Wgs84,
            32601..=32660 => utm(code - 32600, true),
            32701..=32760 => utm(code - 32700, false),
            25828..=25838 => utm(code - 25800, true),
            26901..=26923 => utm(code - 26900, true),
            3857 | 900_913 => Crs::WebMercator,
            _ => Crs::Other(code),
        }
    }

    /// `EPSG:n`, or `unknown`.
    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Crs::Wgs84 => "EPSG:4326".into(),
            Crs::Utm { epsg, .. } | Crs::Other(epsg) => format!("EPSG:{epsg}"),
            Crs::WebMercator => "EPSG:3857".into(),
            Crs::Unknown => "unknown".into(),
        }
    }

    /// Whether footprints can be computed in this CRS.
    #[must_use]
    pub fn supported(&self) -> bool {
        !matches!(self, Crs::Other(_) | Crs::Unknown)
    }

    /// `(longitude, latitude)` in degrees of a point `(x, y)` in this CRS.
    #[must_use]
    pub fn to_wgs84(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let (lon, lat) = match *self {
            Crs::Wgs84 => (x, y),
            Crs::Utm { zone, north, .. } => utm_to_wgs84(zone, north, x, y),
            Crs::WebMercator => {
                let lon = (x / WGS84_A).to_degrees();
                let lat = (2.0 * (y / WGS84_A).exp().atan() - std::f64::consts::FRAC_PI_2).to_degrees();
                (lon, lat)
            }
            Crs::Other(_) | Crs::Unknown => return None,
        };
        (lon.is_finite() && lat.is_finite()).then_some((lon, lat))
    }
}

/// Inverse transverse Mercator for a UTM zone on the WGS84 ellipsoid (Snyder, *Map Projections: A
/// Working Manual*, USGS PP 1395, eqs. 8-18 to 8-25): `(longitude, latitude)` in degrees. Accurate to
/// well under a metre within a zone and its usual overlap.
#[expect(clippy::many_single_char_names, reason = "the symbols of Snyder's formulas")]
#[must_use]
pub fn utm_to_wgs84(zone: u8, north: bool, easting: f64, northing: f64) -> (f64, f64) {
    let a = WGS84_A;
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let ep2 = e2 / (1.0 - e2);
    let x = easting - UTM_FALSE_EASTING;
    let y = if north { northing } else { northing - UTM_FALSE_NORTHING_SOUTH };
    let lon0 = f64::from(zone).mul_add(6.0, -183.0).to_radians();

    // Footpoint latitude from the meridional arc (8-18 .. 8-20).
    let m = y / UTM_K0;
    let mu = m / (a * (1.0 - e2 / 4.0 - 3.0 * e2 * e2 / 64.0 - 5.0 * e2 * e2 * e2 / 256.0));
    let sq = (1.0 - e2).sqrt();
    let e1 = (1.0 - sq) / (1.0 + sq);
    let phi1 = mu
        + (3.0 * e1 / 2.0 - 27.0 * e1.powi(3) / 32.0) * (2.0 * mu).sin()
        + (21.0 * e1 * e1 / 16.0 - 55.0 * e1.powi(4) / 32.0) * (4.0 * mu).sin()
        + (151.0 * e1.powi(3) / 96.0) * (6.0 * mu).sin()
        + (1097.0 * e1.powi(4) / 512.0) * (8.0 * mu).sin();

    // 8-21 .. 8-25.
    let (sin1, cos1) = phi1.sin_cos();
    let tan1 = sin1 / cos1;
    let c1 = ep2 * cos1 * cos1;
    let t1 = tan1 * tan1;
    let w = 1.0 - e2 * sin1 * sin1;
    let n1 = a / w.sqrt();
    let r1 = a * (1.0 - e2) / (w * w.sqrt());
    let d = x / (n1 * UTM_K0);
    let lat = phi1
        - (n1 * tan1 / r1)
            * (d * d / 2.0 - (5.0 + 3.0 * t1 + 10.0 * c1 - 4.0 * c1 * c1 - 9.0 * ep2) * d.powi(4) / 24.0
                + (61.0 + 90.0 * t1 + 298.0 * c1 + 45.0 * t1 * t1 - 252.0 * ep2 - 3.0 * c1 * c1) * d.powi(6) / 720.0);
    let lon = lon0
        + (d - (1.0 + 2.0 * t1 + c1) * d.powi(3) / 6.0
            + (5.0 - 2.0 * c1 + 28.0 * t1 - 3.0 * c1 * c1 + 8.0 * ep2 + 24.0 * t1 * t1) * d.powi(5) / 120.0)
            / cos1;
    (lon.to_degrees(), lat.to_degrees())
}

/// `X = a + b*col + c*row`, `Y = d + e*col + f*row` (GDAL's geotransform order), pixel corners.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub [f64; 6]);

impl Affine {
    /// The CRS coordinates of pixel corner `(col, row)`.
    #[expect(clippy::many_single_char_names, reason = "GDAL geotransform coefficients a..f")]
    #[must_use]
    pub fn apply(&self, col: f64, row: f64) -> (f64, f64) {
        let [a, b, c, d, e, f] = self.0;
        (a + b * col + c * row, d + e * col + f * row)
    }
}

/// A raster's georeferencing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoRef {
    /// The CRS of [`GeoRef::transform`]'s output.
    pub crs: Crs,
    /// Pixel corner -> CRS coordinates.
    pub transform: Affine,
}

/// Raw `GeoTIFF` tag values, as read from a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoTags {
    /// `ModelPixelScaleTag`.
    pub pixel_scale: Option<Vec<f64>>,
    /// `ModelTiepointTag`.
    pub tiepoints: Option<Vec<f64>>,
    /// `ModelTransformationTag`.
    pub transformation: Option<Vec<f64>>,
    /// `GeoKeyDirectoryTag`.
    pub keys: Option<Vec<u16>>,
}

impl GeoTags {
    /// Whether any `GeoTIFF` tag is present.
    #[must_use]
    pub fn any(&self) -> bool {
        self.pixel_scale.is_some() || self.tiepoints.is_some() || self.transformation.is_some() || self.keys.is_some()
    }
}

/// The value of a short `GeoKey` stored inline (`TIFFTagLocation` 0).
#[must_use]
pub fn geo_key(keys: &[u16], id: u16) -> Option<u16> {
    let count = usize::from(*keys.get(3)?);
    keys.get(4..)?.chunks_exact(4).take(count).find(|k| k.first() == Some(&id) && k.get(1) == Some(&0))?.get(3).copied()
}

impl GeoRef {
    /// Georeferencing from `GeoTIFF` tags: `Ok(None)` when the file has none, `Err` when what it has
    /// cannot be used (the reason names the tag).
    #[expect(clippy::many_single_char_names, reason = "GDAL geotransform coefficients a..f")]
    pub fn from_tags(tags: &GeoTags) -> Result<Option<GeoRef>, String> {
        if !tags.any() {
            return Ok(None);
        }
        let keys = tags.keys.as_deref().unwrap_or(&[]);
        let crs = match (geo_key(keys, KEY_PROJECTED_TYPE), geo_key(keys, KEY_GEOGRAPHIC_TYPE)) {
            (Some(p), _) if p != 32767 && p != 0 => Crs::from_epsg(u32::from(p)),
            (_, Some(g)) if g != 32767 && g != 0 && geo_key(keys, KEY_MODEL_TYPE) != Some(1) => {
                Crs::from_epsg(u32::from(g))
            }
            _ => Crs::Unknown,
        };
        let point = geo_key(keys, KEY_RASTER_TYPE) == Some(2);
        let mut transform = if let Some(m) = tags.transformation.as_deref() {
            if m.len() < 16 || m.iter().take(16).any(|v| !v.is_finite()) {
                return Err("ModelTransformationTag does not hold 16 finite numbers".into());
            }
            Affine([m[3], m[0], m[1], m[7], m[4], m[5]])
        } else {
            let tp = tags.tiepoints.as_deref().ok_or("ModelTiepointTag is missing")?;
            let sc = tags.pixel_scale.as_deref().ok_or("ModelPixelScaleTag is missing")?;
            let (&[i, j, _, x, y, _], &[sx, sy, ..]) = (tp.first_chunk::<6>().ok_or("ModelTiepointTag is short")?, sc)
            else {
                return Err("ModelPixelScaleTag is short".into());
            };
            if [i, j, x, y, sx, sy].iter().any(|v| !v.is_finite()) || sx == 0.0 || sy == 0.0 {
                return Err(format!("unusable tiepoint/scale: tiepoint {tp:?}, scale {sc:?}"));
            }
            Affine([x - i * sx, sx, 0.0, y + j * sy, 0.0, -sy])
        };
        if point {
            // The tiepoint names a pixel centre: the grid's corner is half a pixel up and left.
            let [a, b, c, d, e, f] = transform.0;
            transform = Affine([a - 0.5 * (b + c), b, c, d - 0.5 * (e + f), e, f]);
        }
        Ok(Some(GeoRef { crs, transform }))
    }

    /// WGS84 bbox of the pixel window `[x, y, w, h]`: corners and edge midpoints transformed; `None`
    /// for an unsupported CRS, a result off the globe, or one crossing the antimeridian.
    #[must_use]
    pub fn footprint(&self, window: [u32; 4]) -> Option<[f64; 4]> {
        let [x, y, w, h] = window.map(f64::from);
        let mut bbox = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
        for (fx, fy) in [(0.0, 0.0), (0.5, 0.0), (1.0, 0.0), (0.0, 0.5), (1.0, 0.5), (0.0, 1.0), (0.5, 1.0), (1.0, 1.0)]
        {
            let (cx, cy) = self.transform.apply(x + fx * w, y + fy * h);
            let (lon, lat) = self.crs.to_wgs84(cx, cy)?;
            if !(-180.0 - 1e-9..=180.0 + 1e-9).contains(&lon) || !(-90.0 - 1e-9..=90.0 + 1e-9).contains(&lat) {
                return None;
            }
            bbox = [bbox[0].min(lon), bbox[1].min(lat), bbox[2].max(lon), bbox[3].max(lat)];
        }
        if bbox[2] - bbox[0] > 180.0 {
            return None;
        }
        Some([bbox[0].max(-180.0), bbox[1].max(-90.0), bbox[2].min(180.0), bbox[3].min(90.0)])
    }

    /// Approximate ground size of one pixel, metres (the mean of its two sides), at the raster's
    /// centre `(cx, cy)` in pixels.
    #[expect(clippy::many_single_char_names, reason = "GDAL geotransform coefficients a..f")]
    #[must_use]
    pub fn pixel_size_m(&self, cx: f64, cy: f64) -> Option<f64> {
        let [_, b, c, _, e, f] = self.transform.0;
        let (sx, sy) = ((b * b + e * e).sqrt(), (c * c + f * f).sqrt());
        let m = match self.crs {
            Crs::Utm { .. } => f64::midpoint(sx, sy),
            Crs::Wgs84 => {
                let (_, lat) = self.transform.apply(cx, cy);
                f64::midpoint(sx * lat.to_radians().cos(), sy) * METRES_PER_DEGREE
            }
            Crs::WebMercator => {
                let (x, y) = self.transform.apply(cx, cy);
                let (_, lat) = self.crs.to_wgs84(x, y)?;
                f64::midpoint(sx, sy) * lat.to_radians().cos()
            }
            Crs::Other(_) | Crs::Unknown => return None,
        };
        (m.is_finite() && m > 0.0).then_some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utm_central_meridian_and_equator() {
        let (lon, lat) = utm_to_wgs84(33, true, 500_000.0, 0.0);
        assert!((lon - 15.0).abs() < 1e-12 && lat.abs() < 1e-12);
        let (lon, lat) = utm_to_wgs84(33, false, 500_000.0, 10_000_000.0);
        assert!((lon - 15.0).abs() < 1e-12 && lat.abs() < 1e-12);
    }

    #[test]
    fn geo_keys_and_tiepoint_transform() {
        let keys = [1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633];
        assert_eq!(geo_key(&keys, KEY_PROJECTED_TYPE), Some(32633));
        let tags = GeoTags {
            pixel_scale: Some(vec![10.0, 10.0, 0.0]),
            tiepoints: Some(vec![0.0, 0.0, 0.0, 400_000.0, 5_000_000.0, 0.0]),
            transformation: None,
            keys: Some(keys.to_vec()),
        };
        let g = GeoRef::from_tags(&tags).unwrap().unwrap();
        assert_eq!(g.crs, Crs::Utm { epsg: 32633, zone: 33, north: true });
        assert_eq!(g.transform.apply(10.0, 20.0), (400_100.0, 4_999_800.0));
        assert!((g.pixel_size_m(0.0, 0.0).unwrap() - 10.0).abs() < 1e-9);
        let f = g.footprint([0, 0, 100, 100]).unwrap();
        assert!(f[0] < f[2] && f[1] < f[3]);
        assert_eq!(Crs::from_epsg(2154), Crs::Other(2154));
        assert!(GeoRef::from_tags(&GeoTags::default()).unwrap().is_none());
    }
}
