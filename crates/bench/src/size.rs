//! Deployment size: each function's `bootstrap` and the zip Lambda would receive.

use std::io::Write;
use std::path::Path;

use zip::write::SimpleFileOptions;

use crate::report::{Figure, Target, mb};

/// The zip of one `bootstrap`, deflated as `cargo lambda build --output-format zip` packs it,
/// or only stored (fast, for smoke runs on large debug binaries).
fn zipped(bootstrap: &[u8], method: zip::CompressionMethod) -> std::io::Result<usize> {
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(method).unix_permissions(0o755);
    archive.start_file("bootstrap", options).map_err(std::io::Error::other)?;
    archive.write_all(bootstrap)?;
    Ok(archive.finish().map_err(std::io::Error::other)?.into_inner().len())
}

/// Sizes of `{dir}/{binary}/bootstrap` (cargo lambda's layout) or `{dir}/{binary}`.
pub fn measure(dir: &Path, method: zip::CompressionMethod, figures: &mut Vec<Figure>) -> std::io::Result<()> {
    for binary in chat_testing::deployment::binaries() {
        let binary = binary.as_str();
        let nested = dir.join(binary).join("bootstrap");
        let path = if nested.exists() { nested } else { dir.join(binary) };
        let bootstrap = std::fs::read(&path)
            .map_err(|error| std::io::Error::new(error.kind(), format!("{}: {error}", path.display())))?;
        let zip = zipped(&bootstrap, method)?;
        figures.push(Figure { name: format!("{binary} bootstrap"), value: mb(bootstrap.len() as u64), target: None });
        figures.push(Figure {
            name: format!("{binary} zip"),
            value: format!("{} ({} bytes)", mb(zip as u64), zip),
            target: Some(Target::at_most(zip as f64, 3e6, "≤ 3 MB")),
        });
    }
    Ok(())
}
