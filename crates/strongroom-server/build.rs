//! Compiles the gRPC interfaces in `proto/` with protox (pure Rust: no protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/k8s_kms_v2.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    // The client (for `strongroom bench` and tests) runs over our own unix-socket
    // connection, so tonic's transport-based constructors are not generated.
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
