"""`bisearch eval`: the product scored on EN/ZH section benchmarks and the PDF page benchmark."""
