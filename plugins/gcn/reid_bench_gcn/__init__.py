"""ST-GCN and CTR-GCN: the action-recognition graph networks the skeleton re-ID survey evaluates."""
