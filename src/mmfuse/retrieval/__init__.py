"""Cross-modal retrieval in a shared embedding space: vector indexes and evaluation metrics.

``mmfuse.retrieval.metrics`` holds pure ranking metrics (Recall@K, median rank, mAP) under the
Flickr30k/COCO protocol; ``mmfuse.retrieval.index`` holds ``VectorIndex``, an inner-product
index stored as a directory (FAISS is imported only when an index is used).
"""
