//! What a collection stores: its embedding space, typed metadata fields, and the values and
//! records that follow that schema.
//!
//! Invariants:
//! - every schema ends with the reserved fields [`RESERVED_FIELDS`], in that order, and no user
//!   field shares a name with them or with `id`;
//! - a [`Record`] has exactly `dim` finite components and one `Option<Value>` per schema field,
//!   each of the field's type ([`Schema::check_record`]).

use crate::codec::{Dec, DecodeError, Enc};

/// How scores are computed between a query and a stored vector (higher is more similar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Metric {
    /// Cosine similarity: vectors are L2-normalised on insert, the score is the inner product.
    Cosine,
    /// Raw inner product.
    InnerProduct,
}

impl Metric {
    /// Lower-case name used in the CLI and `info`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::InnerProduct => "ip",
        }
    }
}

/// The type of a metadata field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub enum FieldType {
    /// A short string with an inverted index (value -> bitmap of rows).
    Keyword,
    /// A signed 64-bit integer.
    Integer,
    /// A 64-bit float.
    Float,
    /// Microseconds since 1970-01-01T00:00:00Z.
    Timestamp,
    /// A boolean.
    Bool,
    /// A WGS84 bounding box `[min_lon, min_lat, max_lon, max_lat]`.
    GeoBbox,
    /// A free string without an index (paths, URIs).
    Text,
    /// A pixel window `[x, y, w, h]` of a tile inside its scene.
    Window,
    /// Opaque bytes (thumbnails).
    Blob,
}

impl FieldType {
    /// Lower-case name used in the CLI and `info`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Keyword => "keyword",
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::Timestamp => "timestamp",
            FieldType::Bool => "bool",
            FieldType::GeoBbox => "geo_bbox",
            FieldType::Text => "text",
            FieldType::Window => "window",
            FieldType::Blob => "blob",
        }
    }

    /// Parses a name written by [`FieldType::name`].
    #[must_use]
    pub fn from_name(name: &str) -> Option<FieldType> {
        ALL_TYPES.iter().copied().find(|t| t.name() == name)
    }

    pub(crate) fn tag(self) -> u8 {
        match self {
            FieldType::Keyword => 1,
            FieldType::Integer => 2,
            FieldType::Float => 3,
            FieldType::Timestamp => 4,
            FieldType::Bool => 5,
            FieldType::GeoBbox => 6,
            FieldType::Text => 7,
            FieldType::Window => 8,
            FieldType::Blob => 9,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<FieldType> {
        ALL_TYPES.iter().copied().find(|t| t.tag() == tag)
    }

    /// Bytes per row of the fixed-width column of this type; `None` for variable-width types.
    #[must_use]
    pub fn fixed_width(self) -> Option<usize> {
        match self {
            FieldType::Integer | FieldType::Float | FieldType::Timestamp => Some(8),
            FieldType::Bool => Some(1),
            FieldType::GeoBbox => Some(32),
            FieldType::Window => Some(16),
            FieldType::Keyword | FieldType::Text | FieldType::Blob => None,
        }
    }
}

/// Every field type, in tag order.
pub const ALL_TYPES: [FieldType; 9] = [
    FieldType::Keyword,
    FieldType::Integer,
    FieldType::Float,
    FieldType::Timestamp,
    FieldType::Bool,
    FieldType::GeoBbox,
    FieldType::Text,
    FieldType::Window,
    FieldType::Blob,
];

/// Reserved fields present in every schema, after the user's fields.
pub const RESERVED_FIELDS: [(&str, FieldType); 4] = [
    ("source", FieldType::Text),
    ("scene", FieldType::Keyword),
    ("window", FieldType::Window),
    ("thumbnail", FieldType::Blob),
];

/// A named, typed metadata field.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct FieldDef {
    /// Field name: ASCII letters, digits, `_`, `:`, `-` and `.`, starting with a letter or `_`.
    pub name: String,
    /// Field type.
    pub ty: FieldType,
}

/// Longest vector dimension accepted.
pub const MAX_DIM: u32 = 65_536;
/// Longest field name accepted.
pub const MAX_FIELD_NAME: usize = 64;
/// Most user fields per collection.
pub const MAX_FIELDS: usize = 256;

/// A collection's schema.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Schema {
    /// Vector dimension.
    pub dim: u32,
    /// Similarity metric.
    pub metric: Metric,
    /// User fields followed by [`RESERVED_FIELDS`].
    pub fields: Vec<FieldDef>,
}

/// A stored value of one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// See [`FieldType::Keyword`].
    Keyword(String),
    /// See [`FieldType::Integer`].
    Integer(i64),
    /// See [`FieldType::Float`].
    Float(f64),
    /// See [`FieldType::Timestamp`].
    Timestamp(i64),
    /// See [`FieldType::Bool`].
    Bool(bool),
    /// See [`FieldType::GeoBbox`].
    GeoBbox([f64; 4]),
    /// See [`FieldType::Text`].
    Text(String),
    /// See [`FieldType::Window`].
    Window([u32; 4]),
    /// See [`FieldType::Blob`].
    Blob(Vec<u8>),
}

impl Value {
    /// The type of this value.
    #[must_use]
    pub fn ty(&self) -> FieldType {
        match self {
            Value::Keyword(_) => FieldType::Keyword,
            Value::Integer(_) => FieldType::Integer,
            Value::Float(_) => FieldType::Float,
            Value::Timestamp(_) => FieldType::Timestamp,
            Value::Bool(_) => FieldType::Bool,
            Value::GeoBbox(_) => FieldType::GeoBbox,
            Value::Text(_) => FieldType::Text,
            Value::Window(_) => FieldType::Window,
            Value::Blob(_) => FieldType::Blob,
        }
    }

    /// Encodes the fixed-width form (see [`FieldType::fixed_width`]); empty for variable types.
    pub(crate) fn encode_fixed(&self, out: &mut Enc) {
        match self {
            Value::Integer(v) | Value::Timestamp(v) => out.i64(*v),
            Value::Float(v) => out.f64(*v),
            Value::Bool(v) => out.u8(u8::from(*v)),
            Value::GeoBbox(b) => b.iter().for_each(|x| out.f64(*x)),
            Value::Window(w) => w.iter().for_each(|x| out.u32(*x)),
            Value::Keyword(_) | Value::Text(_) | Value::Blob(_) => {}
        }
    }

    /// Decodes the fixed-width form of `ty`.
    pub(crate) fn decode_fixed(ty: FieldType, d: &mut Dec<'_>) -> Result<Value, DecodeError> {
        Ok(match ty {
            FieldType::Integer => Value::Integer(d.i64()?),
            FieldType::Timestamp => Value::Timestamp(d.i64()?),
            FieldType::Float => Value::Float(d.f64()?),
            FieldType::Bool => Value::Bool(d.u8()? != 0),
            FieldType::GeoBbox => Value::GeoBbox([d.f64()?, d.f64()?, d.f64()?, d.f64()?]),
            FieldType::Window => Value::Window([d.u32()?, d.u32()?, d.u32()?, d.u32()?]),
            FieldType::Keyword | FieldType::Text | FieldType::Blob => {
                return Err(DecodeError { offset: d.pos(), reason: "not a fixed-width type" });
            }
        })
    }

    /// Bytes of a variable-width value (`Keyword`, `Text`, `Blob`).
    #[must_use]
    pub fn var_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Keyword(s) | Value::Text(s) => Some(s.as_bytes()),
            Value::Blob(b) => Some(b),
            _ => None,
        }
    }

    /// Encodes a tagged, optional value (WAL records).
    pub(crate) fn encode_opt(v: Option<&Value>, out: &mut Enc) {
        match v {
            None => out.u8(0),
            Some(v) => {
                out.u8(v.ty().tag());
                match v.var_bytes() {
                    Some(b) => out.bytes(b),
                    None => v.encode_fixed(out),
                }
            }
        }
    }

    /// Decodes what [`Value::encode_opt`] wrote.
    pub(crate) fn decode_opt(d: &mut Dec<'_>) -> Result<Option<Value>, DecodeError> {
        let tag = d.u8()?;
        if tag == 0 {
            return Ok(None);
        }
        let pos = d.pos();
        let ty = FieldType::from_tag(tag).ok_or(DecodeError { offset: pos, reason: "unknown value tag" })?;
        let utf8 =
            |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| DecodeError { offset: pos, reason: "invalid UTF-8" });
        Ok(Some(match ty {
            FieldType::Keyword => Value::Keyword(utf8(d.bytes()?)?),
            FieldType::Text => Value::Text(utf8(d.bytes()?)?),
            FieldType::Blob => Value::Blob(d.bytes()?.to_vec()),
            fixed => Value::decode_fixed(fixed, d)?,
        }))
    }
}

/// One row: stable id, vector and one optional value per schema field.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Stable id chosen by the caller.
    pub id: u64,
    /// The embedding.
    pub vector: Vec<f32>,
    /// One entry per [`Schema::fields`], `None` for null.
    pub values: Vec<Option<Value>>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else { return false };
    name.len() <= MAX_FIELD_NAME
        && (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
}

impl Schema {
    /// Builds a schema from user fields; appends the reserved fields.
    pub fn new(dim: u32, metric: Metric, user_fields: Vec<FieldDef>) -> Result<Schema, String> {
        if dim == 0 || dim > MAX_DIM {
            return Err(format!("dimension {dim} is out of range 1..={MAX_DIM}"));
        }
        if user_fields.len() > MAX_FIELDS {
            return Err(format!("{} fields given, at most {MAX_FIELDS} are allowed", user_fields.len()));
        }
        let mut fields = Vec::with_capacity(user_fields.len() + RESERVED_FIELDS.len());
        for f in user_fields {
            if !valid_name(&f.name) {
                return Err(format!(
                    "field name {:?} is not valid: use letters, digits, '_', ':', '-', '.', start \
                     with a letter or '_', at most {MAX_FIELD_NAME} characters",
                    f.name
                ));
            }
            if f.name == "id" || RESERVED_FIELDS.iter().any(|(n, _)| *n == f.name) {
                return Err(format!("field name {:?} is reserved", f.name));
            }
            if fields.iter().any(|g: &FieldDef| g.name == f.name) {
                return Err(format!("field {:?} is declared twice", f.name));
            }
            fields.push(f);
        }
        for (name, ty) in RESERVED_FIELDS {
            fields.push(FieldDef { name: name.to_owned(), ty });
        }
        Ok(Schema { dim, metric, fields })
    }

    /// Checks the invariants of a schema read from disk.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.fields.len();
        let Some(user) = n.checked_sub(RESERVED_FIELDS.len()) else {
            return Err("reserved fields are missing".into());
        };
        let rebuilt = Schema::new(self.dim, self.metric, self.fields.get(..user).unwrap_or(&[]).to_vec())?;
        if rebuilt != *self {
            return Err("reserved fields are missing or out of order".into());
        }
        Ok(())
    }

    /// This schema with one more user field, placed after the existing user fields. Segments
    /// written before the change read the new field as null ([`crate::segment::Segment::bind_schema`]).
    pub fn with_field(&self, field: FieldDef) -> Result<Schema, String> {
        let mut user = self.user_fields().to_vec();
        user.push(field);
        Schema::new(self.dim, self.metric, user)
    }

    /// Index of the field called `name`.
    #[must_use]
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// The user-declared fields (without the reserved ones).
    #[must_use]
    pub fn user_fields(&self) -> &[FieldDef] {
        let n = self.fields.len().saturating_sub(RESERVED_FIELDS.len());
        self.fields.get(..n).unwrap_or(&[])
    }

    /// Checks a record against the schema, naming the first problem.
    pub fn check_record(&self, r: &Record) -> Result<(), String> {
        self.check_row(r.id, &r.vector, &r.values)
    }

    /// Checks one row (id, vector, one value slot per field) against the schema, naming the
    /// first problem: [`Schema::check_record`] without a [`Record`].
    pub fn check_row(&self, id: u64, vector: &[f32], values: &[Option<Value>]) -> Result<(), String> {
        if vector.len() != self.dim as usize {
            return Err(format!(
                "record {id}: vector has {} components, the collection expects {}",
                vector.len(),
                self.dim
            ));
        }
        if let Some((i, x)) = vector.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(format!("record {id}: vector component {i} is not finite ({x})"));
        }
        if values.len() != self.fields.len() {
            return Err(format!("record {id}: {} values for {} fields", values.len(), self.fields.len()));
        }
        for (f, v) in self.fields.iter().zip(values) {
            if let Some(v) = v {
                if v.ty() != f.ty {
                    return Err(format!(
                        "record {id}: field {:?} is {}, got a {} value",
                        f.name,
                        f.ty.name(),
                        v.ty().name()
                    ));
                }
                if let Value::Float(x) = v
                    && x.is_nan()
                {
                    return Err(format!("record {id}: field {:?} is NaN", f.name));
                }
                if let Value::GeoBbox(b) = v {
                    let ok = b.iter().all(|x| x.is_finite())
                        && b[0] <= b[2]
                        && b[1] <= b[3]
                        && (-180.0..=180.0).contains(&b[0])
                        && (-180.0..=180.0).contains(&b[2])
                        && (-90.0..=90.0).contains(&b[1])
                        && (-90.0..=90.0).contains(&b[3]);
                    if !ok {
                        return Err(format!(
                            "record {id}: field {:?} is not a WGS84 bbox [min_lon, min_lat, max_lon, max_lat]: {b:?}",
                            f.name
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_and_bad_names_are_refused() {
        let f = |n: &str| FieldDef { name: n.into(), ty: FieldType::Integer };
        assert!(Schema::new(4, Metric::Cosine, vec![f("source")]).is_err());
        assert!(Schema::new(4, Metric::Cosine, vec![f("id")]).is_err());
        assert!(Schema::new(4, Metric::Cosine, vec![f("1x")]).is_err());
        assert!(Schema::new(4, Metric::Cosine, vec![f("a"), f("a")]).is_err());
        assert!(Schema::new(0, Metric::Cosine, vec![]).is_err());
        let s = Schema::new(4, Metric::Cosine, vec![f("eo:cloud_cover")]).unwrap();
        assert_eq!(s.fields.len(), 1 + RESERVED_FIELDS.len());
        s.validate().unwrap();
    }

    #[test]
    fn values_round_trip() {
        let vals = [
            None,
            Some(Value::Keyword("Port".into())),
            Some(Value::Integer(-3)),
            Some(Value::Float(2.5)),
            Some(Value::Timestamp(1_600_000_000_000_000)),
            Some(Value::Bool(true)),
            Some(Value::GeoBbox([1.0, 2.0, 3.0, 4.0])),
            Some(Value::Text("a/b.tif".into())),
            Some(Value::Window([1, 2, 3, 4])),
            Some(Value::Blob(vec![0, 255])),
        ];
        let mut e = Enc::default();
        for v in &vals {
            Value::encode_opt(v.as_ref(), &mut e);
        }
        let mut d = Dec::new(&e.buf);
        for v in &vals {
            assert_eq!(&Value::decode_opt(&mut d).unwrap(), v);
        }
        assert_eq!(d.remaining(), 0);
    }
}
