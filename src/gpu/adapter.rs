//! Adapter and device selection: the one place that picks a GPU (used by the binary and the test
//! harness; library GPU code only ever takes `&Device, &Queue`).

use crate::{Error, Result};

/// A device with the adapter facts the reports print.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// The WGSL language extensions of the instance (which dot product the int8 kernels use).
    pub wgsl: wgpu::WgslLanguageFeatures,
}

impl Gpu {
    /// The dot product the int8 kernels use here (`Dot4::detect` on the instance's WGSL).
    pub fn dot4(&self) -> super::Dot4 {
        super::Dot4::detect(self.wgsl.clone())
    }
}

/// Request the best adapter (honouring `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`) and a device with
/// that adapter's full limits. `Err(NoAdapter)` when there is none.
#[cfg(not(target_arch = "wasm32"))]
pub fn request_gpu() -> Result<Gpu> {
    pollster::block_on(request_gpu_async())
}

pub async fn request_gpu_async() -> Result<Gpu> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await
        .map_err(|_| Error::NoAdapter)?;
    let info = adapter.get_info();
    // wgpu's WebGPU backend cannot name the `subgroups` feature: the page's request adds it.
    #[cfg(all(target_arch = "wasm32", feature = "web"))]
    browser::request_subgroups_begin();
    let device = adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("wunet"),
            // Timestamps when the adapter has them (for `bench`), subgroups for the conv kernel
            // that shares weights through them; nothing else is needed.
            required_features: adapter.features()
                & (wgpu::Features::TIMESTAMP_QUERY
                    | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
                    | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
                    | wgpu::Features::SUBGROUP),
            required_limits: adapter.limits(),
            ..Default::default()
        })
        .await;
    #[cfg(all(target_arch = "wasm32", feature = "web"))]
    browser::request_subgroups_end();
    let (device, queue) =
        device.map_err(|e| Error::Gpu(format!("cannot open a device on {}: {e}", info.name)))?;
    // Errors are caught by error scopes around each plan and run; anything else is reported, not
    // turned into a panic.
    device.on_uncaptured_error(std::sync::Arc::new(|e| {
        eprintln!("wunet: uncaptured GPU error: {e}")
    }));
    // A lost device (driver reset, GPU removed) is reported; the next GPU call then fails with
    // an error from its error scope or readback, never a panic.
    device.set_device_lost_callback(|reason, msg| {
        if reason != wgpu::DeviceLostReason::Destroyed {
            eprintln!("wunet: the GPU device was lost ({reason:?}): {msg}");
        }
    });
    Ok(Gpu {
        device,
        queue,
        info,
        wgsl: instance.wgsl_language_features(),
    })
}

/// In the browser, wgpu 30's WebGPU backend maps no `subgroups` feature, so it cannot ask for
/// one. For wunet's own device request, `GPUAdapter.prototype.requestDevice` is wrapped once to
/// add `"subgroups"` to the required features where the adapter offers them: the wrapper puts
/// the original back as soon as it is called (wgpu calls it synchronously from
/// `Adapter::request_device`), and `request_subgroups_end` puts it back should it not have been
/// called. `gpu::fixed_subgroup_size_async` then reads the device's own feature set.
#[cfg(all(target_arch = "wasm32", feature = "web"))]
mod browser {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen(inline_js = r#"
let saved = null;
function restore() {
  if (saved !== null) {
    GPUAdapter.prototype.requestDevice = saved;
    saved = null;
  }
}
export function request_subgroups_begin() {
  if (typeof GPUAdapter === "undefined" || saved !== null) return;
  const orig = GPUAdapter.prototype.requestDevice;
  saved = orig;
  GPUAdapter.prototype.requestDevice = function (desc) {
    restore();
    const d = Object.assign({}, desc);
    if (this.features.has("subgroups")) {
      const f = Array.from(d.requiredFeatures || []);
      if (!f.includes("subgroups")) f.push("subgroups");
      d.requiredFeatures = f;
    }
    return orig.call(this, d);
  };
}
export function request_subgroups_end() {
  restore();
}
"#)]
    extern "C" {
        pub fn request_subgroups_begin();
        pub fn request_subgroups_end();
    }
}
