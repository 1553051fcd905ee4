//! A small protobuf reader for the parts of ONNX's `onnx.proto3` that a model file uses
//! (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto). It borrows
//! from the file's bytes, checks every length against what is left, and never allocates more than
//! the input can justify, so a truncated or corrupted file is an error, never a panic.

use std::collections::HashMap;

/// A decoding failure: what was being read and why it is malformed.
#[derive(Debug, Clone)]
pub struct ProtoError(pub String);

type R<T> = std::result::Result<T, ProtoError>;

fn err<T>(msg: impl Into<String>) -> R<T> {
    Err(ProtoError(msg.into()))
}

/// One field of a message: its number and its wire value.
#[derive(Clone, Copy, Debug)]
pub enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Iterates the fields of one message.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    fn varint(&mut self) -> R<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return err("truncated varint");
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return err("varint overflows 64 bits");
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        err("varint longer than 10 bytes")
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if n > self.buf.len() - self.pos {
            return err(format!(
                "field of {n} bytes runs past the end ({} left)",
                self.buf.len() - self.pos
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = R<(u32, Wire<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let r = (|| {
            let key = self.varint()?;
            let field = (key >> 3) as u32;
            if field == 0 || key >> 3 > u64::from(u32::MAX >> 3) {
                return err("invalid field number");
            }
            let wire = match key & 7 {
                0 => Wire::Varint(self.varint()?),
                1 => Wire::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().unwrap())),
                2 => {
                    let n = self.varint()?;
                    let n =
                        usize::try_from(n).map_err(|_| ProtoError("length overflows".into()))?;
                    Wire::Bytes(self.take(n)?)
                }
                5 => Wire::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().unwrap())),
                t => return err(format!("unsupported wire type {t}")),
            };
            Ok((field, wire))
        })();
        if r.is_err() {
            self.pos = self.buf.len();
        }
        Some(r)
    }
}

fn bytes<'a>(w: Wire<'a>, what: &str) -> R<&'a [u8]> {
    match w {
        Wire::Bytes(b) => Ok(b),
        _ => err(format!("{what}: expected a length-delimited field")),
    }
}

fn string(w: Wire, what: &str) -> R<String> {
    let b = bytes(w, what)?;
    String::from_utf8(b.to_vec()).map_err(|_| ProtoError(format!("{what}: not UTF-8")))
}

fn int(w: Wire, what: &str) -> R<i64> {
    match w {
        Wire::Varint(v) => Ok(v as i64),
        _ => err(format!("{what}: expected a varint")),
    }
}

/// Repeated int64: packed (one length-delimited run of varints) or one varint per field.
fn push_ints(w: Wire, out: &mut Vec<i64>, what: &str) -> R<()> {
    match w {
        Wire::Varint(v) => out.push(v as i64),
        Wire::Bytes(b) => {
            let mut f = Fields::new(b);
            while f.pos < b.len() {
                out.push(f.varint()? as i64);
            }
        }
        _ => return err(format!("{what}: expected varints")),
    }
    Ok(())
}

/// Repeated float: packed or one fixed32 per field.
fn push_floats(w: Wire, out: &mut Vec<f32>, what: &str) -> R<()> {
    match w {
        Wire::Fixed32(v) => out.push(f32::from_bits(v)),
        Wire::Bytes(b) => {
            if b.len() % 4 != 0 {
                return err(format!("{what}: packed floats of {} bytes", b.len()));
            }
            out.extend(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
            );
        }
        _ => return err(format!("{what}: expected floats")),
    }
    Ok(())
}

/// Repeated double: packed or one fixed64 per field.
fn push_doubles(w: Wire, out: &mut Vec<f64>, what: &str) -> R<()> {
    match w {
        Wire::Fixed64(v) => out.push(f64::from_bits(v)),
        Wire::Bytes(b) => {
            if b.len() % 8 != 0 {
                return err(format!("{what}: packed doubles of {} bytes", b.len()));
            }
            out.extend(
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap())),
            );
        }
        _ => return err(format!("{what}: expected doubles")),
    }
    Ok(())
}

/// `ModelProto`: the opset imports and the graph.
#[derive(Debug, Default)]
pub struct ModelProto<'a> {
    pub ir_version: i64,
    pub producer: String,
    /// (domain, version); the default domain is "" (or "ai.onnx").
    pub opsets: Vec<(String, i64)>,
    pub graph: Option<GraphProto<'a>>,
    /// Names of model-local functions (field 25): reported if a node calls one.
    pub functions: Vec<String>,
}

#[derive(Debug, Default)]
pub struct GraphProto<'a> {
    pub name: String,
    pub nodes: Vec<NodeProto<'a>>,
    pub initializers: Vec<TensorProto<'a>>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub sparse_initializers: usize,
}

#[derive(Debug, Default)]
pub struct NodeProto<'a> {
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<AttributeProto<'a>>,
}

#[derive(Debug, Default)]
pub struct AttributeProto<'a> {
    pub name: String,
    pub f: Option<f32>,
    pub i: Option<i64>,
    pub s: Option<&'a [u8]>,
    pub t: Option<TensorProto<'a>>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
    pub has_graph: bool,
}

/// `TensorProto`: dims, element type and where its data lives.
#[derive(Debug, Default, Clone)]
pub struct TensorProto<'a> {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: i32,
    pub raw: Option<&'a [u8]>,
    pub floats: Vec<f32>,
    pub int32s: Vec<i64>,
    pub int64s: Vec<i64>,
    pub doubles: Vec<f64>,
    /// `data_location == EXTERNAL`: the data is in `external` (location, offset, length).
    pub external: Option<HashMap<String, String>>,
    pub segmented: bool,
}

/// `ValueInfoProto`: a graph input or output, with its (possibly symbolic) shape.
#[derive(Debug, Default, Clone)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: i32,
    /// One entry per dim: `Some(n)` for a fixed size, `None` for a symbolic or unknown one.
    pub dims: Option<Vec<Option<i64>>>,
}

pub fn model(buf: &[u8]) -> R<ModelProto<'_>> {
    let mut m = ModelProto::default();
    for f in Fields::new(buf) {
        let (n, w) = f?;
        match n {
            1 => m.ir_version = int(w, "ModelProto.ir_version")?,
            2 => m.producer = string(w, "ModelProto.producer_name")?,
            7 => {
                if m.graph.is_some() {
                    return err("ModelProto has two graphs");
                }
                m.graph = Some(graph(bytes(w, "ModelProto.graph")?)?)
            }
            8 => {
                let mut dom = String::new();
                let mut ver = 0;
                for f in Fields::new(bytes(w, "opset_import")?) {
                    match f? {
                        (1, w) => dom = string(w, "opset_import.domain")?,
                        (2, w) => ver = int(w, "opset_import.version")?,
                        _ => {}
                    }
                }
                m.opsets.push((dom, ver));
            }
            25 => {
                for f in Fields::new(bytes(w, "ModelProto.functions")?) {
                    if let (1, w) = f? {
                        m.functions.push(string(w, "FunctionProto.name")?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(m)
}

fn graph(buf: &[u8]) -> R<GraphProto<'_>> {
    let mut g = GraphProto::default();
    for f in Fields::new(buf) {
        let (n, w) = f?;
        match n {
            1 => g.nodes.push(node(bytes(w, "GraphProto.node")?)?),
            2 => g.name = string(w, "GraphProto.name")?,
            5 => g
                .initializers
                .push(tensor(bytes(w, "GraphProto.initializer")?)?),
            11 => g.inputs.push(value_info(bytes(w, "GraphProto.input")?)?),
            12 => g.outputs.push(value_info(bytes(w, "GraphProto.output")?)?),
            15 => g.sparse_initializers += 1,
            _ => {}
        }
    }
    Ok(g)
}

fn node(buf: &[u8]) -> R<NodeProto<'_>> {
    let mut n = NodeProto::default();
    for f in Fields::new(buf) {
        let (k, w) = f?;
        match k {
            1 => n.inputs.push(string(w, "NodeProto.input")?),
            2 => n.outputs.push(string(w, "NodeProto.output")?),
            3 => n.name = string(w, "NodeProto.name")?,
            4 => n.op_type = string(w, "NodeProto.op_type")?,
            5 => n
                .attributes
                .push(attribute(bytes(w, "NodeProto.attribute")?)?),
            7 => n.domain = string(w, "NodeProto.domain")?,
            _ => {}
        }
    }
    Ok(n)
}

fn attribute(buf: &[u8]) -> R<AttributeProto<'_>> {
    let mut a = AttributeProto::default();
    for f in Fields::new(buf) {
        let (k, w) = f?;
        match k {
            1 => a.name = string(w, "AttributeProto.name")?,
            2 => match w {
                Wire::Fixed32(v) => a.f = Some(f32::from_bits(v)),
                _ => return err("AttributeProto.f: expected a float"),
            },
            3 => a.i = Some(int(w, "AttributeProto.i")?),
            4 => a.s = Some(bytes(w, "AttributeProto.s")?),
            5 => a.t = Some(tensor(bytes(w, "AttributeProto.t")?)?),
            6 => a.has_graph = true,
            7 => push_floats(w, &mut a.floats, "AttributeProto.floats")?,
            8 => push_ints(w, &mut a.ints, "AttributeProto.ints")?,
            _ => {}
        }
    }
    Ok(a)
}

fn tensor(buf: &[u8]) -> R<TensorProto<'_>> {
    let mut t = TensorProto::default();
    let mut external = Vec::new();
    let mut location_external = false;
    for f in Fields::new(buf) {
        let (k, w) = f?;
        match k {
            1 => push_ints(w, &mut t.dims, "TensorProto.dims")?,
            2 => t.data_type = int(w, "TensorProto.data_type")? as i32,
            3 => t.segmented = true,
            4 => push_floats(w, &mut t.floats, "TensorProto.float_data")?,
            5 => push_ints(w, &mut t.int32s, "TensorProto.int32_data")?,
            7 => push_ints(w, &mut t.int64s, "TensorProto.int64_data")?,
            8 => t.name = string(w, "TensorProto.name")?,
            9 => t.raw = Some(bytes(w, "TensorProto.raw_data")?),
            10 => push_doubles(w, &mut t.doubles, "TensorProto.double_data")?,
            13 => {
                let mut key = String::new();
                let mut value = String::new();
                for f in Fields::new(bytes(w, "TensorProto.external_data")?) {
                    match f? {
                        (1, w) => key = string(w, "external_data.key")?,
                        (2, w) => value = string(w, "external_data.value")?,
                        _ => {}
                    }
                }
                external.push((key, value));
            }
            14 => location_external = int(w, "TensorProto.data_location")? == 1,
            _ => {}
        }
    }
    if location_external {
        t.external = Some(external.into_iter().collect());
    }
    Ok(t)
}

fn value_info(buf: &[u8]) -> R<ValueInfo> {
    let mut v = ValueInfo::default();
    for f in Fields::new(buf) {
        let (k, w) = f?;
        match k {
            1 => v.name = string(w, "ValueInfoProto.name")?,
            2 => {
                // TypeProto.tensor_type (1) → elem_type (1), shape (2) → dim (1) →
                // dim_value (1) | dim_param (2).
                for f in Fields::new(bytes(w, "TypeProto")?) {
                    let (1, w) = f? else { continue };
                    for f in Fields::new(bytes(w, "TypeProto.Tensor")?) {
                        match f? {
                            (1, w) => v.elem_type = int(w, "elem_type")? as i32,
                            (2, w) => {
                                let mut dims = Vec::new();
                                for f in Fields::new(bytes(w, "TensorShapeProto")?) {
                                    let (1, w) = f? else { continue };
                                    let mut d = None;
                                    for f in Fields::new(bytes(w, "Dimension")?) {
                                        if let (1, w) = f? {
                                            d = Some(int(w, "dim_value")?);
                                        }
                                    }
                                    dims.push(d);
                                }
                                v.dims = Some(dims);
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn field_bytes(n: u32, b: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(n) << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    #[test]
    fn reads_a_node_and_rejects_truncation() {
        let mut node = Vec::new();
        field_bytes(1, b"x", &mut node);
        field_bytes(2, b"y", &mut node);
        field_bytes(4, b"Relu", &mut node);
        let mut graph = Vec::new();
        field_bytes(1, &node, &mut graph);
        let mut m = Vec::new();
        varint(1 << 3, &mut m);
        varint(8, &mut m);
        field_bytes(7, &graph, &mut m);
        let p = model(&m).unwrap();
        let g = p.graph.unwrap();
        assert_eq!(g.nodes[0].op_type, "Relu");
        assert_eq!(g.nodes[0].inputs, ["x"]);
        // A cut at a field boundary is a valid, shorter message: before the graph (the last
        // field) it has none; anywhere inside the graph it is an error.
        for cut in 1..m.len() {
            if let Ok(p) = model(&m[..cut]) {
                assert!(p.graph.is_none(), "cut at {cut} parsed with a graph");
            }
        }
    }

    #[test]
    fn packed_and_unpacked_ints() {
        let mut a = Vec::new();
        field_bytes(1, b"pads", &mut a);
        let mut packed = Vec::new();
        for v in [1u64, 2, 300] {
            varint(v, &mut packed);
        }
        field_bytes(8, &packed, &mut a);
        varint(8 << 3, &mut a);
        varint(7, &mut a);
        let at = attribute(&a).unwrap();
        assert_eq!(at.ints, [1, 2, 300, 7]);
    }
}
