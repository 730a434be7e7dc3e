//! A minimal ONNX (protobuf) walker that finds the external-data files an ONNX model refers to.
//!
//! Why: a model's weights may live outside the `.onnx` file (`TensorProto.external_data`, key `location`,
//! a path relative to the `.onnx` file's folder). The fingerprint must hash those bytes too, and a location
//! must not escape the model directory. Only the messages that can hold tensors are entered; every other
//! field is skipped by its wire length, so a scan touches a few bytes per initializer, not the weights.
//!
//! Messages entered (field numbers from `onnx.proto3`):
//!
//! | message | field → message |
//! | --- | --- |
//! | `ModelProto` | 7 `graph` → `GraphProto`, 25 `functions` → `FunctionProto` |
//! | `GraphProto` | 1 `node` → `NodeProto`, 5 `initializer` → `TensorProto`, 15 `sparse_initializer` → `SparseTensorProto` |
//! | `FunctionProto` | 7 `node` → `NodeProto` |
//! | `NodeProto` | 5 `attribute` → `AttributeProto` |
//! | `AttributeProto` | 5 `t`, 10 `tensors` → `TensorProto`; 6 `g`, 11 `graphs` → `GraphProto`; 22 `sparse_tensor`, 23 `sparse_tensors` → `SparseTensorProto` |
//! | `SparseTensorProto` | 1 `values`, 2 `indices` → `TensorProto` |
//! | `TensorProto` | 13 `external_data` → `StringStringEntryProto` (1 `key`, 2 `value`) |
//!
//! Invariants: never panics on any input (malformed bytes give `Err`), recursion depth is bounded by
//! [`MAX_DEPTH`], and the result is sorted and deduplicated.

/// Nesting deeper than this is refused (real models nest graphs a few levels at most).
pub(crate) const MAX_DEPTH: usize = 64;

/// Where and why a scan failed: byte offset into the file and a reason.
pub(crate) type ScanError = (u64, String);

#[derive(Clone, Copy)]
enum Msg {
    Model,
    Graph,
    Function,
    Node,
    Attribute,
    Sparse,
    Tensor,
    Entry,
}

impl Msg {
    /// The message type a length-delimited field of `self` holds, when it is one we enter.
    fn child(self, field: u64) -> Option<Msg> {
        match (self, field) {
            (Msg::Model, 7) | (Msg::Attribute, 6 | 11) => Some(Msg::Graph),
            (Msg::Model, 25) => Some(Msg::Function),
            (Msg::Graph, 1) | (Msg::Function, 7) => Some(Msg::Node),
            (Msg::Graph, 5) | (Msg::Attribute, 5 | 10) | (Msg::Sparse, 1 | 2) => Some(Msg::Tensor),
            (Msg::Graph, 15) | (Msg::Attribute, 22 | 23) => Some(Msg::Sparse),
            (Msg::Node, 5) => Some(Msg::Attribute),
            (Msg::Tensor, 13) => Some(Msg::Entry),
            _ => None,
        }
    }
}

/// The `location` values of every external-data entry in an ONNX `ModelProto`, sorted and deduplicated.
pub(crate) fn external_data_locations(bytes: &[u8]) -> Result<Vec<String>, ScanError> {
    let mut out = Vec::new();
    walk(bytes, 0, Msg::Model, 0, &mut out)?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(buf: &[u8], base: u64, msg: Msg, depth: usize, out: &mut Vec<String>) -> Result<(), ScanError> {
    if depth > MAX_DEPTH {
        return Err((base, format!("messages nested deeper than {MAX_DEPTH}")));
    }
    let mut pos = 0usize;
    let (mut key, mut value): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    while pos < buf.len() {
        let at = base + pos as u64;
        let tag = varint(buf, &mut pos).ok_or((at, "truncated field tag".to_string()))?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                varint(buf, &mut pos).ok_or((at, "truncated varint".to_string()))?;
            }
            1 => pos = skip(buf, pos, 8).ok_or((at, "truncated fixed64".to_string()))?,
            5 => pos = skip(buf, pos, 4).ok_or((at, "truncated fixed32".to_string()))?,
            2 => {
                let len = varint(buf, &mut pos).ok_or((at, "truncated length".to_string()))?;
                let len = usize::try_from(len).map_err(|_| (at, "length overflows".to_string()))?;
                let end = skip(buf, pos, len).ok_or((at, format!("field {field} runs past the end ({len} bytes)")))?;
                let body = buf.get(pos..end).ok_or((at, "bad slice".to_string()))?;
                if let Msg::Entry = msg {
                    match field {
                        1 => key = Some(body),
                        2 => value = Some(body),
                        _ => {}
                    }
                } else if let Some(child) = msg.child(field) {
                    walk(body, base + pos as u64, child, depth + 1, out)?;
                }
                pos = end;
            }
            _ => return Err((at, format!("unsupported protobuf wire type {wire} (field {field})"))),
        }
    }
    if let (Msg::Entry, Some(b"location"), Some(v)) = (msg, key, value) {
        let loc = std::str::from_utf8(v).map_err(|_| (base, "external data location is not UTF-8".to_string()))?;
        out.push(loc.to_string());
    }
    Ok(())
}

fn skip(buf: &[u8], pos: usize, n: usize) -> Option<usize> {
    let end = pos.checked_add(n)?;
    (end <= buf.len()).then_some(end)
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_field(field: u64, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, (field << 3) | 2);
        put_varint(&mut out, body.len() as u64);
        out.extend_from_slice(body);
        out
    }

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn tensor_with_location(loc: &str) -> Vec<u8> {
        let mut entry = len_field(1, b"location");
        entry.extend(len_field(2, loc.as_bytes()));
        let mut tensor = len_field(8, b"weight"); // name
        tensor.extend(len_field(13, &entry));
        tensor.extend([0x70, 0x01]); // data_location = EXTERNAL (field 14, varint)
        tensor
    }

    #[test]
    fn finds_locations_in_initializers_and_attribute_subgraphs() {
        let init = len_field(5, &tensor_with_location("weights.bin"));
        let inner_graph = len_field(5, &tensor_with_location("../outside.bin"));
        let attribute = len_field(6, &inner_graph);
        let node = len_field(5, &attribute);
        let mut graph = init;
        graph.extend(len_field(1, &node));
        graph.extend(len_field(9, &[0xAA; 100])); // raw field skipped
        let mut model = vec![0x08, 0x07]; // ir_version = 7
        model.extend(len_field(7, &graph));
        let locs = external_data_locations(&model).unwrap();
        assert_eq!(locs, vec!["../outside.bin".to_string(), "weights.bin".to_string()]);
    }

    #[test]
    fn model_without_external_data() {
        let tensor = len_field(9, &[1, 2, 3, 4]);
        let model = len_field(7, &len_field(5, &tensor));
        assert!(external_data_locations(&model).unwrap().is_empty());
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(external_data_locations(&[0x3a, 0xff]).is_err()); // graph field, truncated length
        assert!(external_data_locations(&[0x3a, 0x05, 0x01]).is_err()); // length past the end
        assert!(external_data_locations(&[0x0b]).is_err()); // wire type 3 (groups)
        let mut deep = Vec::new();
        for _ in 0..200 {
            deep = len_field(7, &deep); // Model.graph: the 2nd level is Graph, field 7 is skipped there
        }
        assert!(external_data_locations(&deep).is_ok());
        // deep recursion through Attribute.g -> Graph -> Node -> Attribute ...
        let mut nested = Vec::new();
        for _ in 0..100 {
            nested = len_field(1, &len_field(5, &len_field(6, &nested)));
        }
        assert!(external_data_locations(&len_field(7, &nested)).is_err());
        for len in 0..20 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = external_data_locations(&bytes);
        }
    }
}
