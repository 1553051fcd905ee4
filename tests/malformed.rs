//! Hand-made broken inputs: models (float and int8), `.npy` arrays and images that are truncated,
//! of the wrong dtype, with headers lying about their sizes, huge declared shapes, NaN, zero-sized,
//! 16-bit, 1×1, … Each must give a clear error (a message naming the problem) or a correct result;
//! none may panic or allocate what the file does not hold. The table is printed (`--nocapture`).

mod common;

use wunet::compress::{quantize, QUNet};
use wunet::io::{image_limits, image_tensor, npy_from_bytes};
use wunet::model::{init_random, save_safetensors, InitOptions, StoreDtype};
use wunet::{Tensor, UNet, UNetSpec};

/// What a case must give.
enum Want {
    /// An error whose message contains this.
    Error(&'static str),
    /// A result.
    Ok,
}

/// The 8-byte length, the JSON header and the data of a safetensors file.
fn split(bytes: &[u8]) -> (String, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        String::from_utf8(bytes[8..8 + n].to_vec()).unwrap(),
        bytes[8 + n..].to_vec(),
    )
}

fn join(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A copy of `bytes` with its header edited by `f`.
fn edit_header(bytes: &[u8], f: impl Fn(&str) -> String) -> Vec<u8> {
    let (h, d) = split(bytes);
    join(&f(&h), &d)
}

/// The byte offsets of tensor `key`'s data in a safetensors file.
fn data_range(bytes: &[u8], key: &str) -> std::ops::Range<usize> {
    let (h, _) = split(bytes);
    let at = h.find(&format!("\"{key}\"")).unwrap();
    let offs = &h[at..];
    let o = offs.find("\"data_offsets\":[").unwrap() + "\"data_offsets\":[".len();
    let nums: Vec<usize> = offs[o..offs[o..].find(']').unwrap() + o]
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect();
    let base = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    base + nums[0]..base + nums[1]
}

/// A PNG of `w × h` pixels, 8-bit gray (color type 0) unless said otherwise.
fn png(w: u32, h: u32, color: u8, depth: u8) -> Vec<u8> {
    let mut buf = Vec::new();
    {
        let mut enc = png_encoder(&mut buf, w, h, color, depth);
        let bpp = match color {
            0 => 1,
            2 => 3,
            6 => 4,
            _ => 1,
        } * (depth as usize / 8);
        let data: Vec<u8> = (0..w as usize * h as usize * bpp)
            .map(|i| (i * 7) as u8)
            .collect();
        enc.write_image_data(&data).unwrap();
    }
    buf
}

fn png_encoder(
    buf: &mut Vec<u8>,
    w: u32,
    h: u32,
    color: u8,
    depth: u8,
) -> png::Writer<&mut Vec<u8>> {
    let mut e = png::Encoder::new(buf, w, h);
    e.set_color(match color {
        2 => png::ColorType::Rgb,
        6 => png::ColorType::Rgba,
        _ => png::ColorType::Grayscale,
    });
    e.set_depth(if depth == 16 {
        png::BitDepth::Sixteen
    } else {
        png::BitDepth::Eight
    });
    e.write_header().unwrap()
}

/// Decode an image with the CLI's limits and convert it for a 3-channel model.
fn image(bytes: &[u8]) -> wunet::Result<Tensor> {
    let mut r = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| wunet::Error::InvalidArgument(e.to_string()))?;
    r.limits(image_limits());
    let img = r.decode().map_err(|e| wunet::Error::Image {
        path: "<memory>".into(),
        reason: e.to_string(),
    })?;
    image_tensor(&img, &UNetSpec::new(3, 1, vec![4, 8]))
}

fn npy(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn malformed_inputs_get_clear_errors_never_panics() {
    let spec = UNetSpec::new(3, 1, vec![4, 8]);
    let m = init_random(&spec, &InitOptions { seed: 2 });
    let good = save_safetensors(&m, StoreDtype::F32).unwrap();
    let x = common::random_tensor([1, 3, 16, 16], 1);
    let q = quantize(&m, std::slice::from_ref(&x)).unwrap();
    let qgood = q.to_safetensors().unwrap();
    let w0 = "downs.0.conv1.weight";
    let mut nan = good.clone();
    let r = data_range(&nan, w0);
    nan[r.start..r.start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let mut inf = good.clone();
    inf[r.start + 8..r.start + 12].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let mut zero_scale = qgood.clone();
    let r2 = data_range(&zero_scale, "downs.1.conv1.weight_scale");
    zero_scale[r2.start..r2.start + 4].copy_from_slice(&0f32.to_le_bytes());
    let mut nan_scale = qgood.clone();
    nan_scale[r2.start..r2.start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let r3 = data_range(&qgood, "downs.1.conv1.out_quant");
    let mut bad_zero = qgood.clone();
    bad_zero[r3.start + 4..r3.start + 8].copy_from_slice(&300f32.to_le_bytes());
    let f = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();

    type Case = (&'static str, Box<dyn Fn() -> wunet::Result<()>>, Want);
    let model = |b: Vec<u8>| -> Box<dyn Fn() -> wunet::Result<()>> {
        Box::new(move || UNet::from_safetensors(&b).map(|_| ()))
    };
    let qmodel = |b: Vec<u8>| -> Box<dyn Fn() -> wunet::Result<()>> {
        Box::new(move || QUNet::from_safetensors(&b).map(|_| ()))
    };
    let arr = |b: Vec<u8>| -> Box<dyn Fn() -> wunet::Result<()>> {
        Box::new(move || npy_from_bytes(&b).map(|_| ()))
    };
    let img = |b: Vec<u8>| -> Box<dyn Fn() -> wunet::Result<()>> {
        Box::new(move || image(&b).map(|_| ()))
    };
    let cases: Vec<Case> = vec![
        ("model: empty file", model(vec![]), Want::Error("safetensors")),
        ("model: 7 bytes", model(vec![1; 7]), Want::Error("safetensors")),
        ("model: header longer than the file", model(join(&"x".repeat(10), &[]).into_iter().take(12).collect()), Want::Error("safetensors")),
        ("model: header length 2^64 − 1", model([u64::MAX.to_le_bytes().to_vec(), vec![0; 16]].concat()), Want::Error("safetensors")),
        ("model: header not JSON", model(join("not json at all", &[])), Want::Error("safetensors")),
        ("model: header a JSON array", model(join("[1,2,3]", &[])), Want::Error("safetensors")),
        ("model: unknown dtype", model(edit_header(&good, |h| h.replacen("\"F32\"", "\"Q7\"", 1))), Want::Error("safetensors")),
        ("model: data offsets past the end", model(edit_header(&good, |h| h.replacen("\"data_offsets\":[0,", "\"data_offsets\":[99999999,", 1))), Want::Error("safetensors")),
        ("model: truncated data", model(good[..good.len() - 100].to_vec()), Want::Error("safetensors")),
        ("model: huge declared shape", model(edit_header(&good, |h| h.replacen("\"shape\":[4,3,3,3]", "\"shape\":[400000000,300000,3,3]", 1))), Want::Error("safetensors")),
        ("model: a tensor missing", model(edit_header(&good, |h| h.replacen(w0, "renamed.weight", 1))), Want::Error("missing tensor")),
        ("model: NaN weight", model(nan), Want::Error("non-finite")),
        ("model: infinite weight", model(inf), Want::Error("non-finite")),
        ("model: zero-sized tensor", model(edit_header(&good, |h| h.replacen("\"shape\":[4,3,3,3],\"data_offsets\":[", "\"shape\":[0,3,3,3],\"data_offsets\":[", 1))), Want::Error("")),
        ("model: int8 file loaded as float", model(qgood.clone()), Want::Error("int8")),
        ("int8: unknown format version", qmodel(edit_header(&qgood, |h| h.replacen("\"format_version\":\"1\"", "\"format_version\":\"99\"", 1))), Want::Error("format_version")),
        ("int8: not an int8 file", qmodel(good.clone()), Want::Error("format")),
        ("int8: a scale missing", qmodel(edit_header(&qgood, |h| h.replacen("downs.1.conv1.weight_scale", "downs.1.conv1.weight_scalf", 1))), Want::Error("weight_scale")),
        ("int8: zero scale", qmodel(zero_scale), Want::Error("weight_scale")),
        ("int8: NaN scale", qmodel(nan_scale), Want::Error("weight_scale")),
        ("int8: zero point 300", qmodel(bad_zero), Want::Error("zero point")),
        ("int8: unknown float_layers", qmodel(edit_header(&qgood, |h| h.replacen("\"float_layers\":\"final_conv\"", "\"float_layers\":\"everything\"", 1))), Want::Error("float_layers")),
        ("int8: features not numbers", qmodel(edit_header(&qgood, |h| h.replacen("\"features\":\"4,8\"", "\"features\":\"4,x\"", 1))), Want::Error("features")),
        ("int8: widths that do not double", qmodel(edit_header(&qgood, |h| h.replacen("\"features\":\"4,8\"", "\"features\":\"4,9\"", 1))), Want::Error("")),
        ("int8: truncated", qmodel(qgood[..qgood.len() / 2].to_vec()), Want::Error("safetensors")),
        ("npy: bad magic", arr(b"NOTNUMPY-----".to_vec()), Want::Error("magic")),
        ("npy: truncated header", arr(b"\x93NUMPY\x01\x00\xff\x00{'descr'".to_vec()), Want::Error("truncated")),
        ("npy: int32 data", arr(npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }", &[0; 16])), Want::Error("dtype")),
        ("npy: Fortran order", arr(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", &[0; 16])), Want::Error("Fortran")),
        ("npy: 5-D shape", arr(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 2, 2), }", &[0; 16])), Want::Error("shape")),
        ("npy: shape overflowing usize", arr(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", &[0; 16])), Want::Error("overflow")),
        ("npy: header lies (data truncated)", arr(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000), }", &[0; 16])), Want::Error("truncated")),
        ("npy: shape entry not a number", arr(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", &[0; 16])), Want::Error("shape")),
        ("npy: shape with no opening", arr(npy("{'descr': '<f4', 'fortran_order': False, 'shape': ), }", &[0; 16])), Want::Error("shape")),
        ("npy: NaN values (accepted: the input is data)", arr(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }", &f(&[f32::NAN, 1.0]))), Want::Ok),
        ("npy: zero-sized", arr(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }", &[])), Want::Error("zero-sized")),
        ("image: empty file", img(vec![]), Want::Error("")),
        ("image: text named as PNG", img(b"hello, world".to_vec()), Want::Error("")),
        ("image: truncated PNG", img(png(32, 32, 2, 8)[..60].to_vec()), Want::Error("")),
        ("image: PNG header claiming 100000 × 100000", img({
            let mut p = png(4, 4, 0, 8);
            p[16..20].copy_from_slice(&100_000u32.to_be_bytes());
            p[20..24].copy_from_slice(&100_000u32.to_be_bytes());
            // A valid chunk CRC, so only the size is wrong.
            let crc = common::crc32(&p[12..29]);
            p[29..33].copy_from_slice(&crc.to_be_bytes());
            p
        }), Want::Error("limit")),
        ("image: 16-bit gray PNG (accepted)", img(png(20, 18, 0, 16)), Want::Ok),
        ("image: RGBA PNG (accepted)", img(png(20, 18, 6, 8)), Want::Ok),
        ("image: 1 × 1 PNG (decodes; the CLI refuses it as too small)", img(png(1, 1, 0, 8)), Want::Ok),
        ("image: CMYK JPEG (accepted; colours checked below)", img(std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/malformed/cmyk.jpg")).unwrap()), Want::Ok),
        ("image: CMYK JPEG cut in half", img(std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/malformed/cmyk.jpg")).unwrap()[..280].to_vec()), Want::Error("")),
    ];
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (name, run, want) in &cases {
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
        let line = match (&got, want) {
            (Err(_), _) => {
                failures.push(format!("{name}: PANICKED"));
                "PANIC".to_string()
            }
            (Ok(Ok(())), Want::Ok) => "ok (a result)".into(),
            (Ok(Err(e)), Want::Error(needle)) if e.to_string().contains(needle) => {
                format!("error: {e}")
            }
            (Ok(r), _) => {
                failures.push(format!("{name}: unexpected {r:?}"));
                format!("UNEXPECTED {r:?}")
            }
        };
        eprintln!("{name:<62} {line}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A CMYK JPEG (what print workflows write; made by Pillow: bands of pure cyan, magenta, yellow
/// and 50 % black, a third as strong in the lower half) decodes to the RGB Pillow gives for it
/// within JPEG's rounding, not to inverted or garbled colours.
#[test]
fn a_cmyk_jpeg_decodes_to_the_right_colours() {
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/malformed/cmyk.jpg"),
    )
    .unwrap();
    let t = image(&bytes).expect("a CMYK JPEG decodes");
    assert_eq!(t.shape, [1, 3, 16, 24]);
    // Pillow's `Image.open(..).convert("RGB")` at the band centres, rows 4 and 12.
    let want: [[[u8; 3]; 4]; 2] = [
        [[0, 255, 255], [255, 0, 255], [255, 255, 0], [126, 126, 126]],
        [
            [170, 255, 255],
            [255, 170, 255],
            [255, 255, 170],
            [213, 213, 213],
        ],
    ];
    for (ri, y) in [4usize, 12].into_iter().enumerate() {
        for (band, x) in [3usize, 9, 15, 21].into_iter().enumerate() {
            for (c, &exp) in want[ri][band].iter().enumerate() {
                let got = t.data[(c * 16 + y) * 24 + x] * 255.0;
                let exp = exp as f32;
                assert!(
                    (got - exp).abs() <= 8.0,
                    "pixel ({x}, {y}) channel {c}: {got:.1}, Pillow {exp}"
                );
            }
        }
    }
}

/// Through the CLI: broken files end with exit code 2 and a message, never a panic.
#[test]
fn the_cli_reports_malformed_files_without_panicking() {
    let dir = common::tmp("malformed");
    std::fs::create_dir_all(&dir).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.safetensors", vec![]),
        (
            "garbage.safetensors",
            b"\x05\x00\x00\x00\x00\x00\x00\x00{oops".to_vec(),
        ),
        ("tiny.png", png(1, 1, 0, 8)),
        (
            "bad.npy",
            b"\x93NUMPY\x01\x00\x10\x00{'descr': '<i4'".to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let args: Vec<String> = if name.ends_with(".safetensors") {
            vec!["info".into(), "-m".into(), p.display().to_string()]
        } else {
            vec![
                "infer".into(),
                p.display().to_string(),
                "-o".into(),
                dir.join("out.npy").display().to_string(),
                "--device".into(),
                "cpu".into(),
            ]
        };
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let o = common::wunet(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(err.contains("wunet: error:"), "{name}: {err}");
    }
}
