use std::time::Instant;
use wunet::gpu::{request_gpu, GpuModel, GpuOptions};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let model = wunet::UNet::load(std::path::Path::new(&a[1])).unwrap();
    let s: usize = a[2].parse().unwrap();
    let reps: usize = a[3].parse().unwrap();
    let gpu = request_gpu().unwrap();
    let mk = |w: bool, chunk: u64| {
        let gm = GpuModel::new(
            &gpu.device,
            &gpu.queue,
            &model,
            GpuOptions {
                winograd: w,
                winograd_chunk_bytes: chunk,
                ..Default::default()
            },
        )
        .unwrap();
        let p = gm.plan([1, 3, s, s]).unwrap();
        (gm, p)
    };
    let chunk: u64 = std::env::var("CHUNK")
        .map(|v| v.parse().unwrap())
        .unwrap_or(6 << 20);
    let plans = [mk(false, chunk), mk(true, chunk)];
    let x = wunet::Tensor::new(
        [1, 3, s, s],
        (0..3 * s * s)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect(),
    )
    .unwrap();
    let y0 = plans[0].1.run(&x).unwrap();
    let y1 = plans[1].1.run(&x).unwrap();
    let (d, m) = y1.max_abs_diff(&y0);
    println!("max diff {d:.3e} of {m:.3e} ({:.2e})", d / m);
    let mut t = [vec![], vec![]];
    for _ in 0..reps {
        for k in 0..2 {
            let s = Instant::now();
            plans[k].1.run(&x).unwrap();
            t[k].push(s.elapsed().as_secs_f64() * 1e3);
        }
    }
    for k in 0..2 {
        t[k].sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "winograd={}: {:?}",
            k == 1,
            t[k].iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>()
        );
    }
}
