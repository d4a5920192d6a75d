"""The dataset's shape, named once: its columns, its splits, and the columns of review files."""

COLUMNS = ("review_id", "split", "text", "label", "rating")  # the ingested table, in this order
SPLITS = ("train", "test")  # the dataset's own splits
TRAINING_SPLITS = ("train", "validation", "test")  # validation is carved from train by `prepare`
TEXT = "text"  # the review column, in the table and in files to score
ID_COLUMNS = ("review_id", "id")  # a file's id column: the first of these it has
