//! A minimal in-memory tree implementing `LayerTarget`, and a sink keeping
//! objects in memory, so layer application can be compared with a real
//! extraction (umoci) file by file.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::sync::Mutex;

use sealroot::oci::apply::{LayerTarget, NodeType};
use sealroot::oci::layer::{EntryKind, Metadata};
use sealroot::oci::sink::{FileContent, ObjectSink, copy_exact};
use sealroot::verity::digest::MerkleHasher;
use sealroot::verity::{FsVerityDigest, VerityParams};

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: EntryKind<FileContent>,
    pub meta: Metadata,
    pub children: BTreeMap<Vec<u8>, usize>,
}

#[derive(Debug, Clone)]
pub struct MemTree {
    pub nodes: Vec<Node>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MemError(String);

impl Default for MemTree {
    fn default() -> Self {
        Self::new()
    }
}

impl MemTree {
    pub fn new() -> Self {
        MemTree {
            nodes: vec![Node {
                kind: EntryKind::Directory,
                meta: sealroot::oci::apply::implicit_dir_metadata(),
                children: BTreeMap::new(),
            }],
        }
    }

    /// Every path (`/`-rooted) with its inode number, depth first.
    pub fn walk(&self) -> Vec<(String, usize)> {
        let mut out = vec![("/".to_string(), 0)];
        self.walk_from(0, "", &mut out);
        out
    }

    fn walk_from(&self, dir: usize, prefix: &str, out: &mut Vec<(String, usize)>) {
        for (name, &child) in &self.nodes[dir].children {
            let path = format!("{prefix}/{}", String::from_utf8_lossy(name));
            out.push((path.clone(), child));
            if matches!(self.nodes[child].kind, EntryKind::Directory) {
                self.walk_from(child, &path, out);
            }
        }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        let mut cur = 0;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            cur = *self.nodes[cur].children.get(c.as_bytes())?;
        }
        Some(&self.nodes[cur])
    }

    pub fn inode(&self, path: &str) -> Option<usize> {
        let mut cur = 0;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            cur = *self.nodes[cur].children.get(c.as_bytes())?;
        }
        Some(cur)
    }

    pub fn paths(&self) -> Vec<String> {
        self.walk().into_iter().map(|(p, _)| p).collect()
    }
}

impl LayerTarget for MemTree {
    type Inode = usize;
    type Error = MemError;

    fn root(&self) -> usize {
        0
    }

    fn lookup(&self, dir: usize, name: &[u8]) -> Option<usize> {
        self.nodes[dir].children.get(name).copied()
    }

    fn node_type(&self, inode: usize) -> NodeType {
        match &self.nodes[inode].kind {
            EntryKind::Directory => NodeType::Directory,
            EntryKind::Symlink(t) => NodeType::Symlink(t.clone()),
            _ => NodeType::Other,
        }
    }

    fn entry_names(&self, dir: usize) -> Vec<Vec<u8>> {
        self.nodes[dir].children.keys().cloned().collect()
    }

    fn create(
        &mut self,
        kind: &EntryKind<FileContent>,
        meta: &Metadata,
    ) -> Result<usize, MemError> {
        if matches!(kind, EntryKind::Hardlink(_)) {
            return Err(MemError("create called with a hardlink".into()));
        }
        self.nodes.push(Node {
            kind: kind.clone(),
            meta: meta.clone(),
            children: BTreeMap::new(),
        });
        Ok(self.nodes.len() - 1)
    }

    fn link(&mut self, dir: usize, name: &[u8], inode: usize) -> Result<(), MemError> {
        if !matches!(self.nodes[dir].kind, EntryKind::Directory) {
            return Err(MemError("link into a non-directory".into()));
        }
        if self.nodes[dir]
            .children
            .insert(name.to_vec(), inode)
            .is_some()
        {
            return Err(MemError(format!("{} exists", name.escape_ascii())));
        }
        Ok(())
    }

    fn unlink(&mut self, dir: usize, name: &[u8]) -> Result<(), MemError> {
        self.nodes[dir]
            .children
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| MemError(format!("{} not found", name.escape_ascii())))
    }

    fn set_metadata(&mut self, inode: usize, meta: &Metadata) -> Result<(), MemError> {
        self.nodes[inode].meta = meta.clone();
        Ok(())
    }
}

/// Keeps objects in memory, by fs-verity digest.
#[derive(Default, Debug)]
pub struct MemorySink {
    params: VerityParams,
    pub objects: Mutex<HashMap<FsVerityDigest, Vec<u8>>>,
}

impl ObjectSink for MemorySink {
    fn params(&self) -> &VerityParams {
        &self.params
    }

    fn store(&self, content: &mut dyn Read, size: u64) -> io::Result<FsVerityDigest> {
        let mut hasher = MerkleHasher::new(&self.params);
        let mut data = Vec::new();
        copy_exact(content, size, |c| {
            hasher.update(c);
            data.extend_from_slice(c);
            Ok(())
        })?;
        let d = hasher.finish();
        self.objects.lock().unwrap().insert(d, data);
        Ok(d)
    }
}

impl MemorySink {
    pub fn content(&self, c: &FileContent) -> Vec<u8> {
        match c {
            FileContent::Inline(v) => v.clone(),
            FileContent::External { digest, .. } => self.objects.lock().unwrap()[digest].clone(),
        }
    }
}
