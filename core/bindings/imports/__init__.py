"""Binding sheets (绑定表): read, judged row by row, previewed, committed all or nothing."""
