//! The int8 GPU engine against the CPU int8 engine: every uint8 tensor of the network equal bit
//! for bit (each kernel sees the GPU's own inputs, which equal the CPU's, so this is both the
//! per-kernel and the end-to-end check), with WGSL's packed dot product and with the unpacking
//! fallback; odd sizes (the exact resize), channel counts that are not multiples of 4, batch 2,
//! sparsities 0, 30, 80 and 95 %. The float logits of the head agree to float rounding.

mod common;

use wunet::compress::Block;
use wunet::compress::{prune, quantize, PruneOptions, Scope};
use wunet::cpu::int8::Int8Model;
use wunet::gpu::{ConvChoice, Dot4, GpuInt8Model, GpuInt8Options, Kernel};
use wunet::model::{init_random, InitOptions};
use wunet::plan::{Graph, Op};
use wunet::UNetSpec;

use common::random_tensor as random;

#[test]
fn gpu_int8_equals_cpu_int8_bit_for_bit() {
    let Some(gpu) = common::gpu("gpu_int8_equals_cpu_int8_bit_for_bit") else {
        return;
    };
    for (features, shape, sparsity, block) in [
        (vec![5, 10, 20], [2, 3, 37, 29], 0.0, Block::Weight),
        (vec![3, 6], [1, 3, 18, 23], 0.3, Block::Weight),
        (vec![12, 24, 48], [1, 3, 33, 35], 0.8, Block::Co8Ci4),
        (vec![8, 16], [1, 1, 16, 20], 0.95, Block::Co8Ci4),
        (vec![6, 12], [1, 3, 21, 17], 0.8, Block::Weight),
    ] {
        let mut m = init_random(
            &UNetSpec::new(shape[1], 2, features.clone()),
            &InitOptions { seed: 11 },
        );
        if sparsity > 0.0 {
            prune(
                &mut m,
                &PruneOptions {
                    amount: sparsity,
                    scope: Scope::Global,
                    prune_transposed: true,
                    block,
                },
            )
            .unwrap();
        }
        let x = random(shape, 5);
        let q = quantize(&m, std::slice::from_ref(&x)).unwrap();
        let (want_logits, want) = Int8Model::new(&q).unwrap().forward_all(&x).unwrap();
        let g = Graph::build(&q.spec, shape, true).unwrap();
        for (dot4, conv) in [
            (Dot4::Packed, ConvChoice::Dense),
            (Dot4::Unpacked, ConvChoice::Dense),
            (Dot4::Packed, ConvChoice::Sparse),
            (Dot4::Unpacked, ConvChoice::Sparse),
        ] {
            let what =
                format!("{features:?} {shape:?} sparsity {sparsity} {block:?} {dot4:?} {conv:?}");
            let gm = GpuInt8Model::new(
                &gpu.device,
                &gpu.queue,
                &q,
                GpuInt8Options {
                    dot4,
                    keep_intermediates: true,
                    conv,
                    ..Default::default()
                },
            )
            .unwrap();
            let want_kernel = match conv {
                ConvChoice::Sparse => Kernel::Conv3x3SparseI8,
                _ => Kernel::Conv3x3I8,
            };
            assert!(
                gm.choices().iter().all(|c| c.kernel == want_kernel),
                "{what}"
            );
            let plan = gm.plan(shape).unwrap();
            let got = plan.run_all_raw(&x).unwrap();
            for (t, w) in want.iter().enumerate() {
                let Some(w) = w else { continue };
                let producer = g
                    .ops
                    .iter()
                    .find(|op| op.output() == t)
                    .map_or("input".to_string(), Op::label);
                let n = got[t].len();
                if got[t][..] != w.data[..n] {
                    let first = (0..n).find(|&i| got[t][i] != w.data[i]).unwrap();
                    let diffs = (0..n).filter(|&i| got[t][i] != w.data[i]).count();
                    panic!(
                        "{what}: tensor {t} ({producer}, {:?}): {diffs} of {n} bytes differ, first at {first}: gpu {} cpu {}",
                        g.shapes[t], got[t][first], w.data[first]
                    );
                }
            }
            let logits = plan.run(&x).unwrap();
            common::assert_close(&what, &logits, &want_logits, 1e-5);
            // A plan that reuses memory, with kernels picked by measurement, gives the same logits.
            let lean = GpuInt8Model::new(
                &gpu.device,
                &gpu.queue,
                &q,
                GpuInt8Options {
                    dot4,
                    probe: (shape[2], shape[3]),
                    ..Default::default()
                },
            )
            .unwrap();
            let again = lean.plan(shape).unwrap().run(&x).unwrap();
            assert_eq!(again.data, logits.data, "{what}: reused arena");
        }
    }
}
