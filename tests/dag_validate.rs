use std::path::Path;
#[test]
fn show() {
    let mut names: Vec<_> = std::fs::read_dir("tests/fixtures/dags").unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        match tmctl::dag::load_file(&p) {
            Ok(d) => println!("{} OK {:?}", p.display(), d.topological().map(|t| &t.id).collect::<Vec<_>>()),
            Err(ds) => for d in ds { println!("{d}") },
        }
    }
    let _ = Path::new(".");
}
