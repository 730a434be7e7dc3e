//! [`GeoParquetWriter`]: `GeoParquet` 1.1 through the `parquet` crate's Arrow writer.
//!
//! Columns, in order: `id` (uint64), `rank` (uint32) and `score` (float32) for results, one column
//! per field (keyword, text: `utf8`; integer: `int64`; float: `float64`;
//! timestamp: `timestamp[us, UTC]`; bool: `bool`; `geo_bbox`: struct `xmin, ymin, xmax, ymax`;
//! window: `fixed_size_list<uint32>[4]`), `geometry` (WKB polygon of the
//! footprint, little-endian, exterior ring counter-clockwise; null without one), `bbox` (struct
//! `xmin, ymin, xmax, ymax`, the `GeoParquet` 1.1 bbox covering), and `vector`
//! (`fixed_size_list<float32>[dim]`) when vectors are carried. Each field column's Arrow metadata
//! holds its skysift type under [`TYPE_METADATA_KEY`] so that `skysift load --from` restores it
//! (keyword and text are both strings in Arrow).
//!
//! File metadata: `geo` ([`geo_metadata`]: version 1.1.0, primary column `geometry`, WKB, CRS
//! omitted (OGC:CRS84), the bbox of every footprint, the covering) and whatever
//! [`GeoParquetWriter::set_metadata`] adds. Snappy compression.
//!
//! Memory: rows are buffered in column builders and handed on every [`BATCH_ROWS`] rows; a row
//! group holds at most [`ROW_GROUP_BYTES`] of data (estimated from the row width), so the
//! writer's memory is bounded whatever the number of rows.
//!
//! Threads: the Parquet encoding (levels, compression, the file writes) runs on a thread of its
//! own, one batch behind the caller, who meanwhile fills the next batch. The `vector` column is
//! written without a dictionary and without statistics: embedding components almost never
//! repeat and their minimum and maximum select nothing, so both would be work for no reader.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, Float64Array, RecordBatch, StructArray, UInt32Array};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field, Fields, Schema as ArrowSchema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use skysift_storage::schema::{FieldType, Value};

use super::columns::{Columns, ExportRow};
use super::{RowWriter, VECTOR_COLUMN};
use crate::error::{Error, Result};

/// Arrow field metadata key holding a column's skysift field type (`keyword`, `text`, ...).
pub const TYPE_METADATA_KEY: &str = "skysift:type";
/// Rows buffered before they are handed to the Parquet writer.
pub const BATCH_ROWS: usize = 8192;
/// Upper bound of one row group's data, estimated from the row width.
pub const ROW_GROUP_BYTES: usize = 64 << 20;
/// The geometry column.
pub const GEOMETRY_COLUMN: &str = "geometry";
/// The bbox covering column.
pub const BBOX_COLUMN: &str = "bbox";

/// Names the writer uses for its own columns.
const OWN_COLUMNS: [&str; 6] = ["id", "rank", "score", GEOMETRY_COLUMN, BBOX_COLUMN, VECTOR_COLUMN];

fn parquet_error(e: &parquet::errors::ParquetError) -> Error {
    Error::Invalid(format!("writing GeoParquet failed: {e}; check that the output's disk has room and is writable"))
}

fn arrow_error(e: &arrow_schema::ArrowError) -> Error {
    Error::Invalid(format!("building a GeoParquet batch failed: {e}"))
}

fn bbox_fields() -> Fields {
    ["xmin", "ymin", "xmax", "ymax"].iter().map(|n| Field::new(*n, DataType::Float64, false)).collect()
}

/// The Arrow type of a field column (see the module documentation).
fn arrow_type(ty: FieldType) -> DataType {
    match ty {
        FieldType::Keyword | FieldType::Text => DataType::Utf8,
        FieldType::Integer => DataType::Int64,
        FieldType::Float => DataType::Float64,
        FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        FieldType::Bool => DataType::Boolean,
        FieldType::GeoBbox => DataType::Struct(bbox_fields()),
        FieldType::Window => DataType::FixedSizeList(Arc::new(Field::new("item", DataType::UInt32, false)), 4),
        FieldType::Blob => DataType::Binary,
    }
}

/// Four floats per row and a validity flag.
#[derive(Default)]
struct BboxColumn {
    v: [Vec<f64>; 4],
    valid: Vec<bool>,
}

impl BboxColumn {
    fn push(&mut self, b: Option<[f64; 4]>) {
        for (c, x) in self.v.iter_mut().zip(b.unwrap_or_default()) {
            c.push(x);
        }
        self.valid.push(b.is_some());
    }

    fn finish(&mut self) -> ArrayRef {
        let arrays: Vec<ArrayRef> =
            self.v.iter_mut().map(|c| Arc::new(Float64Array::from(std::mem::take(c))) as ArrayRef).collect();
        let nulls = NullBuffer::from(std::mem::take(&mut self.valid));
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        Arc::new(StructArray::new(bbox_fields(), arrays, nulls))
    }
}

enum Column {
    Str(StringBuilder),
    I64(Int64Builder),
    F64(Float64Builder),
    Ts(TimestampMicrosecondBuilder),
    Bool(BooleanBuilder),
    Bbox(BboxColumn),
    Window(Vec<u32>, Vec<bool>),
}

impl Column {
    fn new(ty: FieldType) -> Column {
        match ty {
            FieldType::Keyword | FieldType::Text | FieldType::Blob => Column::Str(StringBuilder::new()),
            FieldType::Integer => Column::I64(Int64Builder::new()),
            FieldType::Float => Column::F64(Float64Builder::new()),
            FieldType::Timestamp => Column::Ts(TimestampMicrosecondBuilder::new()),
            FieldType::Bool => Column::Bool(BooleanBuilder::new()),
            FieldType::GeoBbox => Column::Bbox(BboxColumn::default()),
            FieldType::Window => Column::Window(Vec::new(), Vec::new()),
        }
    }

    /// Appends a value (already checked by [`Columns::values`] to have the column's type).
    fn push(&mut self, v: Option<&Value>) {
        match (self, v) {
            (Column::Str(b), Some(Value::Keyword(s) | Value::Text(s))) => b.append_value(s),
            (Column::I64(b), Some(Value::Integer(i))) => b.append_value(*i),
            (Column::F64(b), Some(Value::Float(f))) => b.append_value(*f),
            (Column::Ts(b), Some(Value::Timestamp(t))) => b.append_value(*t),
            (Column::Bool(b), Some(Value::Bool(x))) => b.append_value(*x),
            (Column::Bbox(c), Some(Value::GeoBbox(bb))) => c.push(Some(*bb)),
            (Column::Window(v, valid), Some(Value::Window(w))) => {
                v.extend_from_slice(w);
                valid.push(true);
            }
            (Column::Str(b), _) => b.append_null(),
            (Column::I64(b), _) => b.append_null(),
            (Column::F64(b), _) => b.append_null(),
            (Column::Ts(b), _) => b.append_null(),
            (Column::Bool(b), _) => b.append_null(),
            (Column::Bbox(c), _) => c.push(None),
            (Column::Window(v, valid), _) => {
                v.extend_from_slice(&[0; 4]);
                valid.push(false);
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Str(b) => Arc::new(b.finish()),
            Column::I64(b) => Arc::new(b.finish()),
            Column::F64(b) => Arc::new(b.finish()),
            Column::Ts(b) => Arc::new(b.finish().with_timezone("UTC")),
            Column::Bool(b) => Arc::new(b.finish()),
            Column::Bbox(c) => c.finish(),
            Column::Window(v, valid) => {
                let values = Arc::new(UInt32Array::from(std::mem::take(v)));
                let nulls = NullBuffer::from(std::mem::take(valid));
                let nulls = (nulls.null_count() > 0).then_some(nulls);
                Arc::new(FixedSizeListArray::new(
                    Arc::new(Field::new("item", DataType::UInt32, false)),
                    4,
                    values,
                    nulls,
                ))
            }
        }
    }
}

/// The WKB of a bbox polygon: little-endian, type 3 (polygon), one ring of five points.
#[must_use]
pub fn wkb_polygon(b: [f64; 4]) -> Vec<u8> {
    let ring = super::columns::bbox_ring(b);
    let mut out = Vec::with_capacity(1 + 4 + 4 + 4 + ring.len() * 16);
    out.push(1);
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(ring.len() as u32).to_le_bytes());
    for [x, y] in ring {
        out.extend_from_slice(&x.to_le_bytes());
        out.extend_from_slice(&y.to_le_bytes());
    }
    out
}

/// The `geo` file metadata of `GeoParquet` 1.1 for a file whose footprints span `bbox` (`None`:
/// no row has a footprint).
#[must_use]
pub fn geo_metadata(bbox: Option<[f64; 4]>) -> serde_json::Value {
    let mut col = serde_json::json!({
        "encoding": "WKB",
        "geometry_types": if bbox.is_some() { vec!["Polygon"] } else { Vec::new() },
        "covering": { "bbox": {
            "xmin": [BBOX_COLUMN, "xmin"], "ymin": [BBOX_COLUMN, "ymin"],
            "xmax": [BBOX_COLUMN, "xmax"], "ymax": [BBOX_COLUMN, "ymax"],
        }},
    });
    if let Some(b) = bbox {
        col["bbox"] = serde_json::json!(b);
    }
    serde_json::json!({
        "version": "1.1.0",
        "primary_column": GEOMETRY_COLUMN,
        "columns": { GEOMETRY_COLUMN: col },
    })
}

/// The thread that encodes and writes the batches it is sent; it ends when the sender is
/// dropped, or at the first error, and returns the writer for its footer.
struct Encoder<W: Write + Send + 'static> {
    batches: Option<SyncSender<RecordBatch>>,
    thread: Option<JoinHandle<Result<ArrowWriter<W>>>>,
}

impl<W: Write + Send + 'static> Encoder<W> {
    fn start(mut writer: ArrowWriter<W>) -> Result<Encoder<W>> {
        // One batch in the channel: the caller fills the next while this one is encoded.
        let (tx, rx) = sync_channel::<RecordBatch>(1);
        let thread = std::thread::Builder::new()
            .name("parquet-encode".into())
            .spawn(move || {
                for batch in rx {
                    writer.write(&batch).map_err(|e| parquet_error(&e))?;
                }
                Ok(writer)
            })
            .map_err(|e| Error::Invalid(format!("cannot start the Parquet encoder thread: {e}")))?;
        Ok(Encoder { batches: Some(tx), thread: Some(thread) })
    }

    /// Hands `batch` to the thread; when the thread has stopped, its error.
    fn send(&mut self, batch: RecordBatch) -> Result<()> {
        match &self.batches {
            Some(tx) if tx.send(batch).is_ok() => Ok(()),
            _ => match self.join() {
                Err(e) => Err(e),
                Ok(_) => Err(Error::Invalid("the Parquet encoder stopped".into())),
            },
        }
    }

    /// Waits for every batch sent to be written; the writer, or the thread's error.
    fn join(&mut self) -> Result<ArrowWriter<W>> {
        self.batches = None;
        let thread = self.thread.take().ok_or_else(|| Error::Invalid("the Parquet encoder stopped".into()))?;
        thread.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl<W: Write + Send + 'static> Drop for Encoder<W> {
    fn drop(&mut self) {
        // An abandoned export: let the thread finish what it was given before the file goes.
        self.batches = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A streamed `GeoParquet` writer.
pub struct GeoParquetWriter<W: Write + Send + 'static> {
    encoder: Encoder<W>,
    schema: SchemaRef,
    columns: Columns,
    id: UInt64Builder,
    rank: UInt32Builder,
    score: Float32Builder,
    fields: Vec<Column>,
    geometry: BinaryBuilder,
    bbox: BboxColumn,
    vectors: Vec<f32>,
    buffered: usize,
    rows: u64,
    extent: Option<[f64; 4]>,
    metadata: Vec<(String, String)>,
}

impl<W: Write + Send + 'static> std::fmt::Debug for GeoParquetWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoParquetWriter").field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl<W: Write + Send + 'static> GeoParquetWriter<W> {
    /// A writer of rows of `columns` into `out`. Fails when a field has the name of one of the
    /// writer's own columns (`rank`, `score`, `geometry`, `bbox`, `vector`).
    pub fn new(out: W, columns: Columns) -> Result<Self> {
        let mut fields = vec![Field::new("id", DataType::UInt64, false)];
        if columns.scored {
            fields.push(Field::new("rank", DataType::UInt32, true));
            fields.push(Field::new("score", DataType::Float32, true));
        }
        for (name, ty) in &columns.fields {
            if OWN_COLUMNS.contains(&name.as_str()) {
                return Err(Error::Invalid(format!(
                    "field {name:?} has the name of a GeoParquet export column; export as jsonl or csv, or copy the \
                     collection without that field"
                )));
            }
            fields.push(
                Field::new(name, arrow_type(*ty), true)
                    .with_metadata([(TYPE_METADATA_KEY.to_owned(), ty.name().to_owned())].into_iter().collect()),
            );
        }
        fields.push(Field::new(GEOMETRY_COLUMN, DataType::Binary, true));
        fields.push(Field::new(BBOX_COLUMN, DataType::Struct(bbox_fields()), true));
        if let Some(dim) = columns.vector_dim {
            let dim32 = i32::try_from(dim).map_err(|_| Error::Invalid(format!("dimension {dim} is too large")))?;
            fields.push(Field::new(
                VECTOR_COLUMN,
                DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), dim32),
                false,
            ));
        }
        let schema = Arc::new(ArrowSchema::new(fields));
        let row_bytes = 64 + columns.fields.len() * 16 + columns.vector_dim.unwrap_or(0) * 4;
        let group_rows = (ROW_GROUP_BYTES / row_bytes).clamp(1024, 1 << 20);
        // The leaf of a fixed_size_list column, as the Arrow writer names it.
        let vector_leaf = ColumnPath::new(vec![VECTOR_COLUMN.to_owned(), "list".to_owned(), "item".to_owned()]);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(group_rows))
            .set_column_dictionary_enabled(vector_leaf.clone(), false)
            .set_column_statistics_enabled(vector_leaf, EnabledStatistics::None)
            .build();
        let writer = ArrowWriter::try_new(out, Arc::clone(&schema), Some(props)).map_err(|e| parquet_error(&e))?;
        let encoder = Encoder::start(writer)?;
        let field_cols = columns.fields.iter().map(|(_, t)| Column::new(*t)).collect();
        Ok(GeoParquetWriter {
            encoder,
            schema,
            columns,
            id: UInt64Builder::new(),
            rank: UInt32Builder::new(),
            score: Float32Builder::new(),
            fields: field_cols,
            geometry: BinaryBuilder::new(),
            bbox: BboxColumn::default(),
            vectors: Vec::new(),
            buffered: 0,
            rows: 0,
            extent: None,
            metadata: Vec::new(),
        })
    }

    /// Adds a key-value pair to the file metadata (written at the end).
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.push((key.into(), value.into()));
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(self.id.finish())];
        if self.columns.scored {
            arrays.push(Arc::new(self.rank.finish()));
            arrays.push(Arc::new(self.score.finish()));
        }
        arrays.extend(self.fields.iter_mut().map(Column::finish));
        arrays.push(Arc::new(self.geometry.finish()));
        arrays.push(self.bbox.finish());
        if let Some(dim) = self.columns.vector_dim {
            let values = Arc::new(Float32Array::from(std::mem::take(&mut self.vectors)));
            arrays.push(Arc::new(
                FixedSizeListArray::try_new(
                    Arc::new(Field::new("item", DataType::Float32, false)),
                    i32::try_from(dim).unwrap_or(i32::MAX),
                    values,
                    None,
                )
                .map_err(|e| arrow_error(&e))?,
            ));
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays).map_err(|e| arrow_error(&e))?;
        self.encoder.send(batch)?;
        self.buffered = 0;
        Ok(())
    }
}

impl<W: Write + Send + 'static> RowWriter for GeoParquetWriter<W> {
    fn write_row(&mut self, row: &ExportRow<'_>) -> Result<()> {
        if let Some(dim) = self.columns.vector_dim {
            match row.vector {
                Some(v) if v.len() == dim => self.vectors.extend_from_slice(v),
                other => {
                    return Err(Error::Invalid(format!(
                        "record {} has {} vector components, the export has dimension {dim}",
                        row.id,
                        other.map_or(0, <[f32]>::len)
                    )));
                }
            }
        }
        self.id.append_value(row.id);
        if self.columns.scored {
            self.rank.append_option(row.rank.and_then(|r| u32::try_from(r).ok()));
            self.score.append_option(row.score);
        }
        for (col, v) in self.fields.iter_mut().zip(self.columns.values(row)) {
            col.push(v);
        }
        let fp = row.footprint();
        match fp {
            Some(b) => {
                self.geometry.append_value(wkb_polygon(b));
                self.extent =
                    Some(self.extent.map_or(b, |e| [e[0].min(b[0]), e[1].min(b[1]), e[2].max(b[2]), e[3].max(b[3])]));
            }
            None => self.geometry.append_null(),
        }
        self.bbox.push(fp);
        self.buffered += 1;
        self.rows += 1;
        if self.buffered >= BATCH_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<u64> {
        self.flush_batch()?;
        let mut writer = self.encoder.join()?;
        writer.append_key_value_metadata(KeyValue::new("geo".to_owned(), geo_metadata(self.extent).to_string()));
        for (k, v) in std::mem::take(&mut self.metadata) {
            writer.append_key_value_metadata(KeyValue::new(k, v));
        }
        let mut out = writer.into_inner().map_err(|e| parquet_error(&e))?;
        out.flush().map_err(|e| super::write_error(&e))?;
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wkb_is_a_little_endian_polygon_of_five_points() {
        let w = wkb_polygon([1.0, 2.0, 3.0, 4.0]);
        assert_eq!(w.len(), 1 + 4 + 4 + 4 + 5 * 16);
        assert_eq!(&w[..13], &[1, 3, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(f64::from_le_bytes(w[13..21].try_into().unwrap()).to_bits(), 1.0f64.to_bits());
        assert_eq!(
            f64::from_le_bytes(w[29..37].try_into().unwrap()).to_bits(),
            3.0f64.to_bits(),
            "second point is south-east"
        );
    }
}
