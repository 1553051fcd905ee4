//! Every `shaders/**/*.wgsl` parses and validates with naga, without a GPU; every kernel the
//! engine dispatches names a shader that exists.

#[test]
fn every_shader_parses_and_validates() {
    assert!(!wunet::shaders::SHADERS.is_empty(), "no shaders embedded");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk = 0;
    for entry in walk(&dir) {
        on_disk += 1;
        let name = entry
            .strip_prefix(&dir)
            .unwrap()
            .with_extension("")
            .to_string_lossy()
            .replace('\\', "/");
        let src = std::fs::read_to_string(&entry).unwrap();
        assert_eq!(
            wunet::shaders::source(&name),
            src,
            "{name}: embedded copy is stale"
        );
        // Libraries are validated as part of the kernels that use them.
        if name.starts_with("lib/") {
            continue;
        }
        let variants = if wunet::shaders::needs_int8_lib(&src) {
            vec![
                wunet::shaders::compose(&name, true),
                wunet::shaders::compose(&name, false),
            ]
        } else {
            vec![wunet::shaders::compose(&name, true)]
        };
        for src in variants {
            let module = naga::front::wgsl::parse_str(&src)
                .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::all(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
            assert!(
                module.entry_points.iter().any(|e| e.name == "main"),
                "{name}: no `main` entry point"
            );
        }
    }
    assert_eq!(on_disk, wunet::shaders::SHADERS.len());
}

#[test]
fn every_kernel_has_its_shader() {
    for k in wunet::gpu::Kernel::ALL
        .into_iter()
        .chain(wunet::gpu::Kernel::INT8)
    {
        assert!(
            wunet::shaders::SHADERS
                .iter()
                .any(|(n, _)| *n == k.shader()),
            "{k:?}"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "wgsl") {
            out.push(p);
        }
    }
    out
}
