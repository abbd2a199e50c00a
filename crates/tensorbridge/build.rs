//! With feature `torch`: an rpath to libtorch's lib directory in this package's tests, examples
//! and benches, so they run without LD_LIBRARY_PATH (tensorbridge-torch reports the directory).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TENSORBRIDGE_TORCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TENSORBRIDGE_TORCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
