//! board-profiles
