//! Long runs and threads: many inferences on one plan do not grow the process's memory (on
//! lavapipe GPU memory is process memory too) nor wgpu's live buffers, bind groups and buffer
//! memory (its resource counters, any adapter); the engines are `Send + Sync`, and several
//! threads can infer at once on one plan or one CPU model, each getting the right answer.

mod common;

use std::sync::Arc;

use wunet::compress::quantize;
use wunet::cpu::{int8::Int8Model, CpuModel};
use wunet::gpu::{GpuInt8Model, GpuModel, Plan};
use wunet::model::{init_random, InitOptions};
use wunet::UNetSpec;

fn send_sync<T: Send + Sync>() {}

/// The GPU tests of this file share one device, whose resource counters the long run compares:
/// they run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn engines_are_send_and_sync() {
    send_sync::<GpuModel>();
    send_sync::<GpuInt8Model>();
    send_sync::<Plan>();
    send_sync::<CpuModel>();
    send_sync::<Int8Model>();
}

/// Resident set size in bytes (Linux).
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    s.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

#[test]
fn many_runs_on_one_plan_do_not_grow_memory() {
    let Some(gpu) = common::gpu("many_runs_on_one_plan_do_not_grow_memory") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runs: usize = std::env::var("WUNET_LONG_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let m = init_random(&UNetSpec::new(3, 1, vec![4, 8]), &InitOptions { seed: 1 });
    let x = common::random_tensor([1, 3, 32, 32], 2);
    let gm = GpuModel::new(&gpu.device, &gpu.queue, &m, Default::default()).unwrap();
    let plan = gm.plan(x.shape).unwrap();
    let want = plan.run(&x).unwrap();
    for _ in 0..20 {
        plan.run(&x).unwrap();
    }
    // wgpu frees staging memory once the device is polled past the submissions that used it.
    let live = || {
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .unwrap();
        let h = gpu.device.get_internal_counters().hal;
        [
            ("buffers", h.buffers.read()),
            ("bind groups", h.bind_groups.read()),
            ("buffer memory", h.buffer_memory.read()),
            ("memory allocations", h.memory_allocations.read()),
            ("command encoders", h.command_encoders.read()),
        ]
    };
    let gpu_before = live();
    let before = rss();
    for i in 0..runs {
        let y = plan.run(&x).unwrap();
        if i % 50 == 0 {
            assert_eq!(y.data, want.data, "run {i}");
        }
    }
    let after = rss();
    let gpu_after = live();
    eprintln!("wgpu resources before and after: {gpu_before:?} → {gpu_after:?}");
    assert!(
        gpu_before.iter().any(|(_, v)| *v > 0),
        "the counters count (wgpu's `counters` feature): {gpu_before:?}"
    );
    assert_eq!(gpu_after, gpu_before, "GPU resources grew over {runs} runs");
    let grew = after.saturating_sub(before);
    eprintln!(
        "{runs} runs: RSS {:.1} → {:.1} MiB",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    assert!(
        grew < 16 << 20,
        "memory grew by {grew} bytes over {runs} runs"
    );
    assert_eq!(plan.submit_count(), 1 + 20 + runs as u64);
}

#[test]
fn threads_infer_at_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let m = init_random(&UNetSpec::new(3, 2, vec![4, 8]), &InitOptions { seed: 3 });
    let inputs: Vec<_> = (0..4)
        .map(|i| common::random_tensor([1, 3, 32, 32], 10 + i))
        .collect();
    // CPU engines: one model, four threads.
    let cpu = Arc::new(CpuModel::new(m.clone(), true));
    let q = quantize(&m, &inputs[..1]).unwrap();
    let int8 = Arc::new(Int8Model::new(&q).unwrap());
    let want_f: Vec<_> = inputs.iter().map(|x| cpu.forward(x).unwrap()).collect();
    let want_q: Vec<_> = inputs.iter().map(|x| int8.forward(x).unwrap()).collect();
    std::thread::scope(|s| {
        for (i, x) in inputs.iter().enumerate() {
            let (cpu, int8) = (cpu.clone(), int8.clone());
            let (wf, wq) = (&want_f[i], &want_q[i]);
            s.spawn(move || {
                for _ in 0..3 {
                    assert_eq!(cpu.forward(x).unwrap().data, wf.data);
                    assert_eq!(int8.forward(x).unwrap().data, wq.data);
                }
            });
        }
    });
    // One GPU plan shared by four threads: runs serialize on the plan, answers stay right.
    let Some(gpu) = common::gpu("threads_infer_at_once (gpu part)") else {
        return;
    };
    let gm = GpuModel::new(&gpu.device, &gpu.queue, &m, Default::default()).unwrap();
    let plan = Arc::new(gm.plan([1, 3, 32, 32]).unwrap());
    let want: Vec<_> = inputs.iter().map(|x| plan.run(x).unwrap()).collect();
    std::thread::scope(|s| {
        for (x, w) in inputs.iter().zip(&want) {
            let plan = plan.clone();
            s.spawn(move || {
                for _ in 0..3 {
                    assert_eq!(plan.run(x).unwrap().data, w.data);
                }
            });
        }
    });
}

/// A device that is lost (here destroyed, as a driver reset or an unplugged GPU would) makes
/// runs and plans fail with an error, never a panic; the CPU engine is unaffected.
#[test]
fn a_lost_device_gives_errors_not_panics() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Its own device: the shared one must survive.
    if common::gpu("a_lost_device_gives_errors_not_panics").is_none() {
        return;
    }
    let gpu = wunet::gpu::request_gpu().unwrap();
    let m = init_random(&UNetSpec::new(3, 1, vec![4, 8]), &InitOptions { seed: 4 });
    let x = common::random_tensor([1, 3, 32, 32], 6);
    let gm = GpuModel::new(&gpu.device, &gpu.queue, &m, Default::default()).unwrap();
    let plan = gm.plan(x.shape).unwrap();
    let want = plan.run(&x).unwrap();
    let q = quantize(&m, std::slice::from_ref(&x)).unwrap();
    let gq = GpuInt8Model::new(&gpu.device, &gpu.queue, &q, Default::default()).unwrap();
    let qplan = gq.plan(x.shape).unwrap();
    qplan.run(&x).unwrap();

    gpu.device.destroy();
    let outcomes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        (
            plan.run(&x).map(|_| ()),
            qplan.run(&x).map(|_| ()),
            gm.plan([1, 3, 64, 64]).map(|_| ()),
            GpuModel::new(&gpu.device, &gpu.queue, &m, Default::default()).map(|_| ()),
        )
    }))
    .expect("no panic on a lost device");
    eprintln!("after the device was lost: {outcomes:?}");
    assert!(outcomes.0.is_err(), "float32 run: {:?}", outcomes.0);
    assert!(outcomes.1.is_err(), "int8 run: {:?}", outcomes.1);
    assert!(outcomes.2.is_err(), "planning: {:?}", outcomes.2);
    assert!(outcomes.3.is_err(), "uploading a model: {:?}", outcomes.3);
    let cpu = CpuModel::new(m.clone(), true).forward(&x).unwrap();
    common::assert_close("cpu after the loss", &cpu, &want, 1e-4);
}
