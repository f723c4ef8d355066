from distilflow.cli import main

main()
