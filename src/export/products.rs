//! [`ProductReader`]: embedding products (`GeoParquet`, or plain Parquet, with an embedding
//! column) read back as records, batch by batch: what `skysift load --from` writes into a
//! collection.
//!
//! Columns become: the embedding column (`list`, `large_list` or `fixed_size_list` of
//! `float32`) the vector; an integer `id` column the record id (else the row number); the
//! geometry column (WKB; `GeoParquet`'s primary column, else `geometry`) the `footprint` (the
//! bbox of its coordinates, which must be WGS84 longitude/latitude); every other column of a
//! supported type a field (strings: keyword, or the type named in the column's
//! `skysift:type` metadata; integers; floats; bools; timestamps of any unit and dates; bbox
//! structs; `fixed_size_list<uint32>[4]` windows). Columns of other types are listed in
//! [`ProductReader::skipped`]. The `emb:` object of a skysift export ([`super::EMB_METADATA_KEY`])
//! is read as the vectors' provenance.
//!
//! Memory: the reader holds one decoded batch at a time (Parquet pages are read as needed), so
//! files larger than memory load in bounded memory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, sync_channel};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use skysift_storage::schema::{FieldType, RESERVED_FIELDS, Schema, Value};
use skysift_storage::store::RowBatch;

use super::columns::FOOTPRINT_FIELD;
use super::geoparquet::TYPE_METADATA_KEY;
use super::stac::{EMB_METADATA_KEY, EmbeddingInfo};
use crate::db::NewRecord;
use crate::error::{Error, Result};

/// Rows per batch read (default of [`ProductOptions::batch_rows`]).
pub const DEFAULT_BATCH_ROWS: usize = 8192;
/// Deepest nesting of WKB collections accepted.
const MAX_WKB_DEPTH: usize = 16;

/// How to read a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductOptions {
    /// The embedding column (default `vector`).
    pub vector_column: String,
    /// The geometry column (default: the `GeoParquet` primary column, else `geometry` if any).
    pub geometry_column: Option<String>,
    /// Rows per batch (default [`DEFAULT_BATCH_ROWS`]).
    pub batch_rows: usize,
}

impl Default for ProductOptions {
    fn default() -> Self {
        ProductOptions { vector_column: "vector".into(), geometry_column: None, batch_rows: DEFAULT_BATCH_ROWS }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conv {
    Str,
    Int,
    Float,
    Bool,
    Ts(TimeUnit),
    Date,
    Bbox,
    Window,
}

#[derive(Debug, Clone)]
struct Plan {
    column: usize,
    name: String,
    conv: Conv,
}

/// A streamed reader of an embedding product.
pub struct ProductReader {
    path: PathBuf,
    /// Batches decoded by the reader's own thread (Parquet decoding overlaps the caller's
    /// work on the previous batch); the thread ends when this end is dropped.
    reader: Decoders,
    pending: Option<RecordBatch>,
    plan: Vec<Plan>,
    fields: Vec<(String, FieldType)>,
    vector: usize,
    geometry: Option<usize>,
    id: Option<usize>,
    dim: usize,
    rows: u64,
    row: u64,
    emb: Option<EmbeddingInfo>,
    skipped: Vec<String>,
}

impl std::fmt::Debug for ProductReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductReader").field("path", &self.path).field("rows", &self.rows).finish_non_exhaustive()
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::bad_input(path, reason)
}

fn is_int(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

fn conv_of(t: &DataType) -> Option<Conv> {
    Some(match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Conv::Str,
        t if is_int(t) => Conv::Int,
        DataType::Float32 | DataType::Float64 => Conv::Float,
        DataType::Boolean => Conv::Bool,
        DataType::Timestamp(u, _) => Conv::Ts(*u),
        DataType::Date32 => Conv::Date,
        DataType::Struct(f)
            if f.len() == 4
                && ["xmin", "ymin", "xmax", "ymax"]
                    .iter()
                    .zip(f.iter())
                    .all(|(n, c)| c.name() == n && c.data_type() == &DataType::Float64) =>
        {
            Conv::Bbox
        }
        DataType::FixedSizeList(item, 4) if item.data_type() == &DataType::UInt32 => Conv::Window,
        _ => return None,
    })
}

fn field_type(conv: Conv, declared: Option<&str>) -> FieldType {
    match conv {
        Conv::Str => match declared.and_then(FieldType::from_name) {
            Some(FieldType::Text) => FieldType::Text,
            _ => FieldType::Keyword,
        },
        Conv::Int => FieldType::Integer,
        Conv::Float => FieldType::Float,
        Conv::Bool => FieldType::Bool,
        Conv::Ts(_) | Conv::Date => FieldType::Timestamp,
        Conv::Bbox => FieldType::GeoBbox,
        Conv::Window => FieldType::Window,
    }
}

/// Whether the `GeoParquet` CRS of a column is WGS84 longitude/latitude (absent means so).
fn crs_is_lonlat(crs: Option<&serde_json::Value>) -> bool {
    match crs {
        None => true,
        Some(serde_json::Value::String(s)) => matches!(s.as_str(), "OGC:CRS84" | "EPSG:4326" | "CRS84"),
        Some(serde_json::Value::Object(o)) => o.get("id").is_some_and(|id| {
            let auth = id.get("authority").and_then(serde_json::Value::as_str);
            let code = id.get("code");
            (auth == Some("EPSG") && (code == Some(&4326.into()) || code == Some(&"4326".into())))
                || (auth == Some("OGC") && code == Some(&"CRS84".into()))
        }),
        Some(_) => false,
    }
}

impl ProductReader {
    /// Opens `path` and plans its columns.
    #[expect(clippy::too_many_lines, reason = "one pass over the file's columns, each kind in its place")]
    pub fn open(path: &Path, opts: &ProductOptions) -> Result<ProductReader> {
        let file = File::open(path).map_err(|e| bad(path, format!("cannot open: {e}")))?;
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::default())
            .map_err(|e| bad(path, format!("not a readable Parquet file: {e}")))?;
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone());
        let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        let kv: Vec<(String, String)> = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .map(|kv| kv.iter().map(|k| (k.key.clone(), k.value.clone().unwrap_or_default())).collect())
            .unwrap_or_default();
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        let geo: Option<serde_json::Value> = get("geo").and_then(|g| serde_json::from_str(g).ok());
        let emb = match get(EMB_METADATA_KEY) {
            Some(text) => {
                let j: serde_json::Value = serde_json::from_str(text)
                    .map_err(|e| bad(path, format!("the {EMB_METADATA_KEY} metadata is not JSON: {e}")))?;
                Some(EmbeddingInfo::from_json(&j)?)
            }
            None => None,
        };
        let schema = builder.schema().clone();
        let index_of = |name: &str| schema.fields().iter().position(|f| f.name() == name);
        let vector = index_of(&opts.vector_column).ok_or_else(|| {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            bad(
                path,
                format!(
                    "no column {:?}; name the embedding column with --vector-column (columns: {})",
                    opts.vector_column,
                    names.join(", ")
                ),
            )
        })?;
        let vfield = &schema.fields()[vector];
        let fixed_dim = match vfield.data_type() {
            DataType::FixedSizeList(item, n) if item.data_type() == &DataType::Float32 => usize::try_from(*n).ok(),
            DataType::List(item) | DataType::LargeList(item) if item.data_type() == &DataType::Float32 => None,
            other => {
                return Err(bad(
                    path,
                    format!(
                        "column {:?} is {other}, not a list of float32; cast the embeddings to float32 lists",
                        opts.vector_column
                    ),
                ));
            }
        };
        let geo_name = opts.geometry_column.clone().or_else(|| {
            geo.as_ref()
                .and_then(|g| g.get("primary_column"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .or_else(|| index_of("geometry").map(|_| "geometry".to_owned()))
        });
        let geometry = match &geo_name {
            Some(g) => {
                let i = index_of(g).ok_or_else(|| bad(path, format!("no geometry column {g:?}")))?;
                if !matches!(
                    schema.fields()[i].data_type(),
                    DataType::Binary | DataType::LargeBinary | DataType::BinaryView
                ) {
                    return Err(bad(path, format!("geometry column {g:?} is not WKB (binary); write it as WKB")));
                }
                let crs = geo.as_ref().and_then(|j| j.get("columns")).and_then(|c| c.get(g)).and_then(|c| c.get("crs"));
                if !crs_is_lonlat(crs) {
                    return Err(bad(
                        path,
                        format!(
                            "geometry column {g:?} is not in WGS84 longitude/latitude; reproject it to OGC:CRS84 first"
                        ),
                    ));
                }
                Some(i)
            }
            None => None,
        };
        // Covering columns of the geometry (GeoParquet 1.1 bbox) repeat it: not fields.
        let covering: Vec<String> = geo
            .as_ref()
            .and_then(|j| j.get("columns"))
            .and_then(serde_json::Value::as_object)
            .map(|cols| {
                cols.values()
                    .filter_map(|c| c.pointer("/covering/bbox/xmin/0").and_then(serde_json::Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let id = index_of("id").filter(|i| is_int(schema.fields()[*i].data_type()));
        let mut plan = Vec::new();
        let mut fields = Vec::new();
        let mut skipped = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            if i == vector || Some(i) == geometry || Some(i) == id || covering.contains(f.name()) {
                continue;
            }
            let Some(conv) = conv_of(f.data_type()) else {
                skipped.push(format!("{} ({})", f.name(), f.data_type()));
                continue;
            };
            let declared = f.metadata().get(TYPE_METADATA_KEY).map(String::as_str);
            let mut ty = field_type(conv, declared);
            if let Some((_, reserved)) = RESERVED_FIELDS.iter().find(|(n, _)| n == f.name()) {
                match (conv, reserved) {
                    (Conv::Str, FieldType::Text | FieldType::Keyword) | (Conv::Window, FieldType::Window) => {
                        ty = *reserved;
                    }
                    _ => {
                        skipped.push(format!("{} ({}: the reserved field has another type)", f.name(), f.data_type()));
                        continue;
                    }
                }
            }
            plan.push(Plan { column: i, name: f.name().clone(), conv });
            if !RESERVED_FIELDS.iter().any(|(n, _)| n == f.name()) {
                fields.push((f.name().clone(), ty));
            }
        }
        if geometry.is_some() && !fields.iter().any(|(n, _)| n == FOOTPRINT_FIELD) {
            fields.push((FOOTPRINT_FIELD.to_owned(), FieldType::GeoBbox));
        }
        drop(builder);
        let mut me = ProductReader {
            path: path.to_path_buf(),
            reader: Decoders::start(path, &meta, opts.batch_rows.max(1)),
            pending: None,
            plan,
            fields,
            vector,
            geometry,
            id,
            dim: fixed_dim.unwrap_or(0),
            rows,
            row: 0,
            emb,
            skipped,
        };
        if fixed_dim.is_none() {
            // Variable lists: the first row gives the dimension (every row must have it).
            me.pending = me.next_arrow()?;
            if let Some(b) = &me.pending {
                me.dim = me.row_vector(b, 0)?.len();
            }
        }
        if let Some(e) = &me.emb
            && me.dim != 0
            && e.dimensions != me.dim
        {
            return Err(bad(
                path,
                format!("the emb: metadata says {} dimensions, the embeddings have {}", e.dimensions, me.dim),
            ));
        }
        Ok(me)
    }

    /// The file read.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows in the file.
    #[must_use]
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Embedding dimension (0 for an empty file of variable-length lists).
    #[must_use]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The fields a new collection gets, `(name, type)`: every mapped column but the reserved
    /// ones, and `footprint` when there is geometry.
    #[must_use]
    pub fn fields(&self) -> &[(String, FieldType)] {
        &self.fields
    }

    /// Columns left out, with their types.
    #[must_use]
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The `emb:` provenance the file carries, if any.
    #[must_use]
    pub fn embedding(&self) -> Option<&EmbeddingInfo> {
        self.emb.as_ref()
    }

    fn next_arrow(&mut self) -> Result<Option<RecordBatch>> {
        self.reader.next().map_err(|e| bad(&self.path, format!("reading near row {}: {e}", self.row)))
    }

    fn row_vector<'b>(&self, b: &'b RecordBatch, i: usize) -> Result<&'b [f32]> {
        let col = b.column(self.vector);
        let at = self.row + i as u64;
        if col.is_null(i) {
            return Err(bad(&self.path, format!("row {at} has no embedding (null)")));
        }
        let values = match col.data_type() {
            DataType::FixedSizeList(..) => {
                let l = col.as_fixed_size_list();
                let size = usize::try_from(l.value_length()).unwrap_or(0);
                let off = l.value_offset(i) as usize;
                let v = l.values().as_primitive::<Float32Type>().values();
                v.get(off..off + size)
            }
            DataType::List(_) => {
                let l = col.as_list::<i32>();
                let offs = l.value_offsets();
                let v = l.values().as_primitive::<Float32Type>().values();
                match (offs.get(i), offs.get(i + 1)) {
                    (Some(a), Some(z)) => v.get(*a as usize..*z as usize),
                    _ => None,
                }
            }
            DataType::LargeList(_) => {
                let l = col.as_list::<i64>();
                let offs = l.value_offsets();
                let v = l.values().as_primitive::<Float32Type>().values();
                match (offs.get(i), offs.get(i + 1)) {
                    (Some(a), Some(z)) => v.get(*a as usize..*z as usize),
                    _ => None,
                }
            }
            _ => None,
        };
        values.ok_or_else(|| bad(&self.path, format!("row {at}: the embedding cannot be read")))
    }

    /// The next batch of records (`None` at the end).
    pub fn next_batch(&mut self) -> Result<Option<Vec<NewRecord>>> {
        let names = self.slot_names();
        let mut out = Vec::new();
        let more = self.visit(|id, v, fields| {
            let fields = fields.drain(..).filter_map(|(k, val)| Some((names.get(k)?.clone(), val))).collect();
            out.push(NewRecord { id, vector: v.to_vec(), fields });
            Ok(())
        })?;
        Ok(more.then_some(out))
    }

    /// Appends the next batch's rows to `out`, their values in the order of `schema`'s fields
    /// (the collection they are loaded into); false at the end. Fails on a column that is not a
    /// field of `schema`.
    pub fn next_rows(&mut self, schema: &Schema, out: &mut RowBatch) -> Result<bool> {
        let footprint = self.plan.len();
        let slots: Vec<usize> = self
            .slot_names()
            .iter()
            .enumerate()
            .map(|(k, n)| {
                if k == footprint && self.geometry.is_none() {
                    return Ok(usize::MAX);
                }
                schema.field_index(n).ok_or_else(|| {
                    let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
                    bad(
                        &self.path,
                        format!("column {n:?} is not a field of the collection (its fields: {})", names.join(", ")),
                    )
                })
            })
            .collect::<Result<_>>()?;
        self.visit(|id, v, fields| {
            let values = out.push(id, v)?;
            for (k, val) in fields.drain(..) {
                if let Some(slot) = slots.get(k).and_then(|s| values.get_mut(*s)) {
                    *slot = Some(val);
                }
            }
            Ok(())
        })
    }

    /// The names of the value slots [`ProductReader::visit`] fills: the planned columns, then
    /// `footprint` (the geometry's).
    fn slot_names(&self) -> Vec<String> {
        self.plan.iter().map(|p| p.name.clone()).chain([FOOTPRINT_FIELD.to_owned()]).collect()
    }

    /// Reads the next batch and hands each row to `sink` (id, vector, values by slot of
    /// [`ProductReader::slot_names`]; the sink drains them); false at the end.
    fn visit(&mut self, mut sink: impl FnMut(u64, &[f32], &mut Vec<(usize, Value)>) -> Result<()>) -> Result<bool> {
        let batch = match self.pending.take() {
            Some(b) => b,
            None => match self.next_arrow()? {
                Some(b) => b,
                None => return Ok(false),
            },
        };
        let footprint = self.plan.len();
        let text: Vec<bool> = self
            .plan
            .iter()
            .map(|p| p.name == "source" || self.fields.iter().any(|(n, t)| *n == p.name && *t == FieldType::Text))
            .collect();
        let mut fields = Vec::with_capacity(self.plan.len() + 1);
        for i in 0..batch.num_rows() {
            let at = self.row + i as u64;
            let v = self.row_vector(&batch, i)?;
            if v.len() != self.dim {
                return Err(bad(
                    &self.path,
                    format!("row {at} has {} embedding components, the first row has {}", v.len(), self.dim),
                ));
            }
            let id = match self.id {
                Some(c) => int_value(batch.column(c).as_ref(), i)
                    .and_then(|x| u64::try_from(x).ok())
                    .ok_or_else(|| bad(&self.path, format!("row {at}: the id is null, negative or too large")))?,
                None => at,
            };
            fields.clear();
            for (k, p) in self.plan.iter().enumerate() {
                if let Some(val) = value(batch.column(p.column).as_ref(), p.conv, i) {
                    let val = match val {
                        Value::Keyword(s) if text.get(k) == Some(&true) => Value::Text(s),
                        other => other,
                    };
                    fields.push((k, val));
                }
            }
            if let Some(g) = self.geometry {
                let col = batch.column(g);
                if !col.is_null(i) {
                    let wkb: &[u8] = match col.data_type() {
                        DataType::Binary => col.as_binary::<i32>().value(i),
                        DataType::LargeBinary => col.as_binary::<i64>().value(i),
                        _ => col.as_binary_view().value(i),
                    };
                    match wkb_bounds(wkb) {
                        Ok(Some(b)) => {
                            if !(-180.0..=180.0).contains(&b[0])
                                || !(-180.0..=180.0).contains(&b[2])
                                || !(-90.0..=90.0).contains(&b[1])
                                || !(-90.0..=90.0).contains(&b[3])
                            {
                                return Err(bad(
                                    &self.path,
                                    format!(
                                        "row {at}: the geometry {b:?} is not longitude/latitude; reproject to WGS84"
                                    ),
                                ));
                            }
                            fields.retain(|(k, _)| self.plan.get(*k).is_none_or(|p| p.name != FOOTPRINT_FIELD));
                            fields.push((footprint, Value::GeoBbox(b)));
                        }
                        Ok(None) => {}
                        Err(e) => return Err(bad(&self.path, format!("row {at}: bad WKB geometry: {e}"))),
                    }
                }
            }
            sink(id, v, &mut fields)?;
        }
        self.row += batch.num_rows() as u64;
        Ok(true)
    }
}

/// What a decoding thread sends: a batch, the end of a row group, or the error that stopped it.
enum Decoded {
    Batch(RecordBatch),
    GroupEnd,
    Failed(String),
}

/// Parquet decoding on threads of their own (up to two, a row group at a time each: thread
/// `t` decodes groups `t`, `t + n`, ...), each a couple of batches ahead of the reader, which
/// takes the groups back in file order. A thread ends when its receiver is dropped.
struct Decoders {
    channels: Vec<Receiver<Decoded>>,
    group: usize,
    groups: usize,
}

impl Decoders {
    fn start(path: &Path, meta: &ArrowReaderMetadata, batch_rows: usize) -> Decoders {
        const MAX_THREADS: usize = 2;
        let groups = meta.metadata().num_row_groups();
        let n = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).clamp(1, MAX_THREADS);
        let n = n.min(groups).max(1);
        let channels = (0..n)
            .map(|t| {
                let (tx, rx) = sync_channel(2);
                let (path, meta) = (path.to_path_buf(), meta.clone());
                std::thread::spawn(move || {
                    for g in (t..groups).step_by(n) {
                        let reader = File::open(&path).map_err(|e| e.to_string()).and_then(|f| {
                            ParquetRecordBatchReaderBuilder::new_with_metadata(f, meta.clone())
                                .with_row_groups(vec![g])
                                .with_batch_size(batch_rows)
                                .build()
                                .map_err(|e| e.to_string())
                        });
                        let reader = match reader {
                            Ok(r) => r,
                            Err(e) => {
                                let _ = tx.send(Decoded::Failed(e));
                                return;
                            }
                        };
                        for b in reader {
                            let (msg, failed) = match b {
                                Ok(b) => (Decoded::Batch(b), false),
                                Err(e) => (Decoded::Failed(e.to_string()), true),
                            };
                            if tx.send(msg).is_err() || failed {
                                return;
                            }
                        }
                        if tx.send(Decoded::GroupEnd).is_err() {
                            return;
                        }
                    }
                });
                rx
            })
            .collect();
        Decoders { channels, group: 0, groups }
    }

    /// The next batch in file order; `Ok(None)` after the last row group.
    fn next(&mut self) -> std::result::Result<Option<RecordBatch>, String> {
        while self.group < self.groups {
            let n = self.channels.len().max(1);
            let Some(rx) = self.channels.get(self.group % n) else { break };
            match rx.recv() {
                Ok(Decoded::Batch(b)) => return Ok(Some(b)),
                Ok(Decoded::GroupEnd) => self.group += 1,
                Ok(Decoded::Failed(e)) => return Err(e),
                Err(_) => return Err(format!("the decoder of row group {} stopped", self.group)),
            }
        }
        Ok(None)
    }
}

fn int_value(a: &dyn Array, i: usize) -> Option<i64> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Int8 => i64::from(a.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => i64::from(a.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => i64::from(a.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i),
        DataType::UInt8 => i64::from(a.as_primitive::<UInt8Type>().value(i)),
        DataType::UInt16 => i64::from(a.as_primitive::<UInt16Type>().value(i)),
        DataType::UInt32 => i64::from(a.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => i64::try_from(a.as_primitive::<UInt64Type>().value(i)).ok()?,
        _ => return None,
    })
}

fn value(a: &dyn Array, conv: Conv, i: usize) -> Option<Value> {
    if a.is_null(i) {
        return None;
    }
    Some(match conv {
        Conv::Str => Value::Keyword(
            match a.data_type() {
                DataType::Utf8 => a.as_string::<i32>().value(i),
                DataType::LargeUtf8 => a.as_string::<i64>().value(i),
                _ => a.as_string_view().value(i),
            }
            .to_owned(),
        ),
        Conv::Int => Value::Integer(int_value(a, i)?),
        Conv::Float => Value::Float(match a.data_type() {
            DataType::Float32 => f64::from(a.as_primitive::<Float32Type>().value(i)),
            _ => a.as_primitive::<Float64Type>().value(i),
        }),
        Conv::Bool => Value::Bool(a.as_boolean().value(i)),
        Conv::Ts(unit) => Value::Timestamp(match unit {
            TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(i).checked_mul(1_000_000)?,
            TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(i).checked_mul(1000)?,
            TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(i),
            TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value(i).div_euclid(1000),
        }),
        Conv::Date => {
            Value::Timestamp(i64::from(a.as_primitive::<arrow_array::types::Date32Type>().value(i)) * 86_400_000_000)
        }
        Conv::Bbox => {
            let s = a.as_struct();
            let c = |k: usize| s.column(k).as_primitive::<Float64Type>().value(i);
            Value::GeoBbox([c(0), c(1), c(2), c(3)])
        }
        Conv::Window => {
            let l = a.as_fixed_size_list();
            let v = l.value(i);
            let v = v.as_primitive::<UInt32Type>().values();
            Value::Window([*v.first()?, *v.get(1)?, *v.get(2)?, *v.get(3)?])
        }
    })
}

/// A cursor over WKB bytes that fails instead of reading past the end.
struct Wkb<'a> {
    b: &'a [u8],
    at: usize,
}

impl Wkb<'_> {
    fn take<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let s = self.b.get(self.at..self.at + N).ok_or_else(|| format!("ends at byte {}", self.b.len()))?;
        self.at += N;
        let mut out = [0; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    fn u32(&mut self, le: bool) -> std::result::Result<u32, String> {
        let b = self.take::<4>()?;
        Ok(if le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    }

    fn f64(&mut self, le: bool) -> std::result::Result<f64, String> {
        let b = self.take::<8>()?;
        Ok(if le { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) })
    }

    fn point(&mut self, le: bool, dims: usize, acc: &mut Option<[f64; 4]>) -> std::result::Result<(), String> {
        let x = self.f64(le)?;
        let y = self.f64(le)?;
        for _ in 2..dims {
            self.f64(le)?;
        }
        if x.is_nan() || y.is_nan() {
            return Ok(()); // an empty point
        }
        if !x.is_finite() || !y.is_finite() {
            return Err("a coordinate is infinite".into());
        }
        *acc = Some(acc.map_or([x, y, x, y], |a| [a[0].min(x), a[1].min(y), a[2].max(x), a[3].max(y)]));
        Ok(())
    }

    fn geometry(&mut self, acc: &mut Option<[f64; 4]>, depth: usize) -> std::result::Result<(), String> {
        if depth > MAX_WKB_DEPTH {
            return Err(format!("collections nested deeper than {MAX_WKB_DEPTH}"));
        }
        let le = match self.take::<1>()?[0] {
            0 => false,
            1 => true,
            o => return Err(format!("byte order {o} is neither 0 nor 1")),
        };
        let t = self.u32(le)?;
        if t & 0x2000_0000 != 0 {
            self.u32(le)?; // EWKB SRID
        }
        let (ewkb_z, ewkb_m) = (t & 0x8000_0000 != 0, t & 0x4000_0000 != 0);
        let iso = t & 0x0FFF_FFFF;
        let (kind, flavour) = (iso % 1000, iso / 1000);
        let dims = 2
            + usize::from(ewkb_z || flavour == 1 || flavour == 3)
            + usize::from(ewkb_m || flavour == 2 || flavour == 3);
        match kind {
            1 => self.point(le, dims, acc),
            2 => {
                for _ in 0..self.u32(le)? {
                    self.point(le, dims, acc)?;
                }
                Ok(())
            }
            3 => {
                for _ in 0..self.u32(le)? {
                    for _ in 0..self.u32(le)? {
                        self.point(le, dims, acc)?;
                    }
                }
                Ok(())
            }
            4..=7 => {
                for _ in 0..self.u32(le)? {
                    self.geometry(acc, depth + 1)?;
                }
                Ok(())
            }
            other => Err(format!("geometry type {other} is not one WKB defines")),
        }
    }
}

/// The bbox `[min_lon, min_lat, max_lon, max_lat]` of every coordinate of a WKB (or EWKB)
/// geometry; `None` for an empty one.
pub fn wkb_bounds(wkb: &[u8]) -> std::result::Result<Option<[f64; 4]>, String> {
    let mut acc = None;
    Wkb { b: wkb, at: 0 }.geometry(&mut acc, 0)?;
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wkb_bounds_of_our_polygons_and_of_garbage() {
        let w = super::super::geoparquet::wkb_polygon([1.0, 2.0, 3.0, 4.0]);
        assert_eq!(
            wkb_bounds(&w).unwrap().map(|b| b.map(f64::to_bits)),
            Some([1.0f64, 2.0, 3.0, 4.0].map(f64::to_bits))
        );
        for cut in 0..w.len() {
            assert!(wkb_bounds(&w[..cut]).is_err(), "truncated at {cut}");
        }
        assert!(wkb_bounds(&[1, 9, 0, 0, 0]).is_err());
        // A multipolygon claiming 4 billion parts ends with an error, not a hang or a panic.
        assert!(wkb_bounds(&[1, 6, 0, 0, 0, 255, 255, 255, 255]).is_err());
    }
}
