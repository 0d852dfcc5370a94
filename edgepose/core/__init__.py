"""The core every layer may import: errors, the pose type, keypoint schemas, image
transforms, and small file helpers. Imports nothing else from edgepose."""
