//! The text tower: `tokenizer.json` (crate `tokenizers`, Unigram models through [`super::tokenizer`]) and
//! the text ONNX graph.
//!
//! Tokenising follows the reference (`scripts/model/evaluate.py: TextEncoder`): the tokenizer's own
//! normaliser and post-processor (special tokens added), the tokenizer file's truncation if it has one, then
//! ids cut to `max_tokens`; padding is done here (the file's padding is turned off): right-padded with
//! `pad_id` to the longest sequence of the batch, or to `max_tokens` for fixed-length towers, with
//! `attention_mask` 1 on tokens and 0 on padding, `token_type_ids` all 0.
//!
//! Invariants: a batch sent to the graph holds at most the encoder's batch size; output rows come back in
//! input order; the session is used by one call at a time (`Mutex`), so the tower is `Send + Sync`.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Mutex;

use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;

use super::error::{EncodeError, EncodeResult};
use super::manifest::{IdType, Padding, TextInput, TextSpec};
use super::ort_session::rows_of;
use super::tokenizer::TextTokenizer;

pub(crate) struct TextTower {
    tokenizer: TextTokenizer,
    tokenizer_path: PathBuf,
    session: Mutex<Session>,
    spec: TextSpec,
    dim: usize,
}

impl TextTower {
    pub(crate) fn new(
        tokenizer: TextTokenizer,
        tokenizer_path: PathBuf,
        session: Session,
        spec: &TextSpec,
        dim: usize,
    ) -> Self {
        TextTower { tokenizer, tokenizer_path, session: Mutex::new(session), spec: spec.clone(), dim }
    }

    /// Token ids of one text, with special tokens, cut to `max_tokens`.
    pub(crate) fn tokenize(&self, text: &str) -> EncodeResult<Vec<u32>> {
        let lowered;
        let text = if self.spec.lowercase {
            lowered = text.to_lowercase();
            lowered.as_str()
        } else {
            text
        };
        let mut ids = self
            .tokenizer
            .ids(text)
            .map_err(|reason| EncodeError::Tokenizer { path: self.tokenizer_path.clone(), reason })?;
        ids.truncate(self.spec.max_tokens);
        Ok(ids)
    }

    /// Runs one batch of token sequences through the graph (no normalisation).
    pub(crate) fn run(&self, batch: &[Vec<u32>]) -> EncodeResult<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let rows = batch.len();
        let longest = batch.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let len = match self.spec.padding {
            Padding::Right => longest,
            Padding::MaxLength => self.spec.max_tokens.max(longest),
        };
        let pad = i64::from(self.spec.pad_id);
        let mut ids = vec![pad; rows * len];
        let mut mask = vec![0i64; rows * len];
        for ((seq, id_row), mask_row) in batch.iter().zip(ids.chunks_mut(len)).zip(mask.chunks_mut(len)) {
            for ((id, slot), m) in seq.iter().zip(id_row.iter_mut()).zip(mask_row.iter_mut()) {
                *slot = i64::from(*id);
                *m = 1;
            }
        }
        let shape = [rows, len];
        let ctx = "text tower: input tensor";
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(self.spec.inputs.len());
        for input in &self.spec.inputs {
            let (name, data) = match input {
                TextInput::InputIds => ("input_ids", ids.clone()),
                TextInput::AttentionMask => ("attention_mask", mask.clone()),
                TextInput::TokenTypeIds => ("token_type_ids", vec![0i64; rows * len]),
            };
            let value: SessionInputValue<'_> = match self.spec.input_dtype {
                IdType::Int64 => Tensor::from_array((shape, data)).map_err(|e| EncodeError::ort(ctx, &e))?.into(),
                IdType::Int32 => {
                    let narrow: Vec<i32> = data.iter().map(|&v| v as i32).collect();
                    Tensor::from_array((shape, narrow)).map_err(|e| EncodeError::ort(ctx, &e))?.into()
                }
            };
            inputs.push((Cow::Borrowed(name), value));
        }
        let mut session =
            self.session.lock().map_err(|_| EncodeError::Invalid("text tower session lock poisoned".into()))?;
        let outputs = session.run(inputs).map_err(|e| EncodeError::ort("text tower: run", &e))?;
        let out = outputs.get(&self.spec.output_name).ok_or_else(|| EncodeError::Ort {
            context: "text tower: outputs".into(),
            reason: format!("no output named {:?} (manifest text.output_name)", self.spec.output_name),
        })?;
        let (shape, data) = out.try_extract_tensor::<f32>().map_err(|e| EncodeError::ort("text tower: output", &e))?;
        rows_of("text", shape, data, rows, self.dim)
    }
}
