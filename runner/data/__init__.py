"""From a spec's data to the rows a search reads.

``sources`` lists the clips (one reader per layout, all returning the same clips table);
``dataset`` turns them, through the feature engine or a pre-extracted table, into a
``Dataset``; ``splits`` decides the held-out test split and the CV folds per clip or group;
``checks`` holds what a listing must satisfy (files exist, classes not too rare);
``demo_data`` synthesizes the corpus of ``audioml demo``.
"""
