//! Finds libtorch's lib directory (torch-sys reports it) and
//! - puts it into the rpath of this package's tests, so they run without LD_LIBRARY_PATH;
//! - hands it on to dependents (`DEP_TENSORBRIDGE_TORCH_LIBTORCH_LIB`), which do the same.
//!
//! Nothing is downloaded: torch-sys finds libtorch from `LIBTORCH` or `LIBTORCH_USE_PYTORCH=1`
//! (the Makefile points `LIBTORCH` at the `torch` package installed in `.venv`).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:libtorch_lib={lib}");
    }
}
