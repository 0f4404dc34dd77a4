//! composefs EROFS.
