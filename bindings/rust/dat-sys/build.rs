//! Finds libdat for linking: $LIBDAT_LIB_DIR (the folder holding libdat.so, e.g.
//! the meson build folder), else `pkg-config --libs libdat` (an installed libdat,
//! or the uninstalled one with PKG_CONFIG_PATH=<build>/meson-uninstalled).
use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBDAT_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    if let Ok(dir) = env::var("LIBDAT_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", dir);
        println!("cargo:rustc-link-lib=dylib=dat");
        return;
    }
    let out = Command::new("pkg-config").args(&["--libs", "libdat"]).output();
    match out {
        Ok(o) if o.status.success() => {
            for flag in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                if let Some(dir) = flag.strip_prefix("-L") {
                    println!("cargo:rustc-link-search=native={}", dir);
                } else if let Some(name) = flag.strip_prefix("-l") {
                    println!("cargo:rustc-link-lib=dylib={}", name);
                }
            }
        }
        _ => panic!(
            "dat-sys: libdat not found: set LIBDAT_LIB_DIR to the folder of libdat.so, \
             or make `pkg-config --libs libdat` work (PKG_CONFIG_PATH)"
        ),
    }
}
